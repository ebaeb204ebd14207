"""Download public datasets (the Medical Segmentation Decathlon tasks) into ``<root>/raw/<name>``.

``catalog`` names the tasks and their archives, ``fetch`` downloads with resume and checksum,
``archive`` unpacks a tar safely, and ``install`` ties them together.
"""
from __future__ import annotations

from autolung.datasets_remote.catalog import RemoteDataset, resolve_remote_dataset
from autolung.datasets_remote.install import install_dataset

__all__ = ["RemoteDataset", "install_dataset", "resolve_remote_dataset"]
