"""Training data: memory-mapped preprocessed cases, patch sampling, batches and worker processes."""
from __future__ import annotations
