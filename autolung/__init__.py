"""autolung: self-configuring segmentation for CT, lung first."""
from __future__ import annotations

__version__ = "0.1.0"
