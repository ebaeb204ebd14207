"""Preprocessing: crop to the nonzero box, normalize, resample, store; and the way back.

``case.preprocess_case`` turns one raw case into network input and is reused verbatim by the
predictor; ``restore.restore_to_original`` maps network output back onto the original grid;
``run.preprocess_dataset`` runs the whole dataset in parallel and resumably.
"""
from __future__ import annotations
