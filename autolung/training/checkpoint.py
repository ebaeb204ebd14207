"""Checkpoints: one ``torch.save`` dict that ``torch.load(weights_only=True)`` can read.

Only tensors, numbers, strings, lists and dicts go in; RNG states are converted accordingly
(NumPy's legacy state array as a tensor, Python's as lists). Files are written atomically, so a
run killed mid-save keeps its previous checkpoint.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autolung import __version__
from autolung.errors import AutolungError, WriteFailedError
from autolung.results import BEST_CHECKPOINT, FINAL_CHECKPOINT, LATEST_CHECKPOINT, WEIGHT_EMA_CHECKPOINT
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMAT = "autolung-checkpoint"
VERSION = 1
# The file names are the results layout's (autolung.results); short aliases for the trainer.
LATEST, BEST, FINAL, WEIGHT_EMA = LATEST_CHECKPOINT, BEST_CHECKPOINT, FINAL_CHECKPOINT, WEIGHT_EMA_CHECKPOINT


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch, NumPy (legacy global) and Python, in weights-only-safe types.

    Returns:
        A dict for :func:`restore_rng_state`.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`.

    Returns:
        None.
    """
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_header(plans_digest: str, configuration: str, fold: int | str, epoch: int) -> dict[str, Any]:
    """The contract fields every checkpoint starts with.

    Returns:
        The header dict.
    """
    return {"format": FORMAT, "version": VERSION, "autolung_version": __version__, "plans_digest": plans_digest,
            "configuration": configuration, "fold": fold, "epoch": epoch}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically.

    Returns:
        None.
    """
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except RuntimeError as exc:  # torch reports a failed write (a full disk) as RuntimeError
        reason = " ".join(str(exc).split())[:160]
        raise WriteFailedError(f"cannot write the checkpoint ({reason}); is the disk full? "
                               f"the previous {path.name}, if any, was kept", path=path) from exc
    logger.debug("saved %s", path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its format.

    Args:
        path: the file.
        map_location: where tensors go.

    Returns:
        The checkpoint dict.

    Raises:
        AutolungError: when it is missing, unreadable or not an autolung checkpoint.
    """
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise AutolungError("checkpoint not found", path=path) from None
    except Exception as exc:  # pickle and zip errors come in many types
        raise AutolungError(f"cannot load checkpoint ({type(exc).__name__}: {exc})", path=path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AutolungError("not an autolung checkpoint", path=path)
    if payload.get("version") != VERSION:
        raise AutolungError(f"checkpoint version {payload.get('version')} is not supported (expected {VERSION})",
                            path=path)
    return payload
