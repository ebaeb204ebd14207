"""Training: patch sampling, augmentation, losses, the training loop, checkpoints and folds.

The entry point is :func:`autolung.training.run.train_fold`; configuration comes in a
:class:`autolung.training.options.TrainingOptions`.
"""
from __future__ import annotations
