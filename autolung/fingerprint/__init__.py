"""Dataset fingerprint: per-case geometry, intensities, class fractions and lesion sizes.

``fingerprint_dataset(dataset_folder, data_root, num_processes, progress)`` writes
``<root>/preprocessed/<Dataset>/fingerprint.json``; the planners read only that file.
"""
from __future__ import annotations

from autolung.fingerprint.run import FINGERPRINT_VERSION, fingerprint_dataset, load_fingerprint

__all__ = ["FINGERPRINT_VERSION", "fingerprint_dataset", "load_fingerprint"]
