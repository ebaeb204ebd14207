"""Evaluation: overlap, surface, volume and lesion-wise metrics of predicted label maps.

``evaluate_folders(reference_folder, prediction_folder, ...)`` evaluates whole folders;
``evaluate_case(ref, pred, spacing, labels)`` one pair of label maps. See docs/evaluation.md.
"""
from __future__ import annotations

from autolung.evaluation.evaluate import evaluate_folders
from autolung.evaluation.metrics import evaluate_case

__all__ = ["evaluate_case", "evaluate_folders"]
