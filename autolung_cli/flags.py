"""Library parameters named as the CLI user types them.

Library messages name a parameter in backquotes (```epochs``` must be at least 1); the CLI shows
the flag instead (``--epochs must be at least 1``). A parameter without a flag here stays as the
library wrote it.
"""
from __future__ import annotations

import logging
import re

PARAMETER_FLAGS: dict[str, str] = {
    # training
    "epochs": "--epochs", "iters_per_epoch": "--iters-per-epoch", "val_iters": "--val-iters",
    "num_gpus": "--num-gpus", "num_workers": "--num-workers", "time_budget_s": "--time-budget",
    "loss": "--loss", "device": "--device", "precision": "--precision", "resume": "--continue",
    "validation_mode": "--validation-mode", "validation_checkpoint": "--val-best", "validation_only": "--val-only",
    "checkpointing": "--disable-checkpointing", "pretrained_weights": "--pretrained-weights",
    # planning and preprocessing
    "patch_size": "--patch-size", "target_spacing": "--target-spacing", "batch_size": "--batch-size",
    "configurations": "-c", "num_processes": "-np", "planner": "--planner",
    # prediction
    "dataset_name": "-d", "model_path": "--model", "output_folder": "-o", "lesion_report": "--report", "sr": "--sr",
    # overlays and benchmarks
    "window": "--window", "compare_nnunet": "--compare-nnunet",
    # data tools and benchmarks
    "md5": "--md5", "url": "--url", "overwrite": "--overwrite", "input_folder": "-i",
    "file_ending": "--file-ending", "labels": "--labels", "allow_unlabelled": "--allow-unlabelled",
    "channel_names": "--channel-name", "layout": "--layout", "axis": "--axis", "nnunet_names": "--nnunet-name",
}

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def with_flags(message: str) -> str:
    """``message`` with every backquoted parameter that has a flag replaced by that flag."""
    return _PARAMETER.sub(lambda match: PARAMETER_FLAGS.get(match[1], match[0]), message)


class FlagFormatter(logging.Formatter):
    """A log formatter that shows library parameters as CLI flags."""

    def format(self, record: logging.LogRecord) -> str:
        return with_flags(super().format(record))
