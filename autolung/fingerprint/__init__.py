"""Dataset fingerprint: per-case geometry, intensities, class fractions and lesion sizes.

``fingerprint_dataset(dataset_folder, data_root, num_processes, progress)`` writes
``<root>/preprocessed/<Dataset>/fingerprint.json``; the planners read only that file, as a typed
:class:`~autolung.fingerprint.schema.Fingerprint`.
"""
from __future__ import annotations

from typing import Any

from autolung.fingerprint.schema import FINGERPRINT_VERSION, Fingerprint

__all__ = ["FINGERPRINT_VERSION", "Fingerprint", "fingerprint_dataset", "load_fingerprint"]


def __getattr__(name: str) -> Any:
    # Deferred: fingerprinting imports image reading (about 1.5 s), which reading a Fingerprint
    # (planning) never needs.
    if name in ("fingerprint_dataset", "load_fingerprint"):
        from autolung.fingerprint import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
