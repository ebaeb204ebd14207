"""Reading nnU-Net v2 checkpoints without executing code.

nnU-Net saves ``checkpoint_final.pth`` / ``checkpoint_best.pth`` with ``torch.save`` of a dict:
``network_weights`` (the state dict), ``optimizer_state``, ``grad_scaler_state``, ``logging``
(lists of floats, some numpy scalars), ``_best_ema``, ``current_epoch``, ``init_args`` (plans,
configuration, fold, dataset.json, a ``torch.device``), ``trainer_name`` and
``inference_allowed_mirroring_axes``. nnU-Net itself loads them with ``weights_only=False``,
which runs whatever the pickle says. Here they are read with ``torch.load(weights_only=True)``
plus an explicit allow-list of the plain numpy types those dicts hold; any other global (a
function, a class with a ``__reduce__`` payload) is refused before anything runs.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autolung.errors import InvalidInputError, UnsafeFileError

# Plain numpy types seen in nnU-Net checkpoints: scalars (np.float64 in 'logging', '_best_ema'),
# their dtypes, and arrays. Module paths differ between numpy 1 ("numpy.core") and 2 ("numpy._core").
_DTYPE_CLASSES = ("BoolDType", "Float16DType", "Float32DType", "Float64DType", "Int8DType", "Int16DType",
                  "Int32DType", "Int64DType", "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType")


def nnunet_safe_globals() -> list[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals`` for nnU-Net checkpoints.

    Returns:
        Objects (or ``(object, pickled name)`` pairs for names that differ between numpy versions).
    """
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 moved numpy.core to numpy._core
    scalar = core.multiarray.scalar
    reconstruct = core.multiarray._reconstruct
    allowed: list[Any] = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(scalar, f"{module}.scalar"), (reconstruct, f"{module}._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in _DTYPE_CLASSES if hasattr(dtypes, name)]
    return allowed


def load_nnunet_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an nnU-Net checkpoint dict with ``weights_only=True`` and the numpy allow-list.

    Args:
        path: ``checkpoint_final.pth`` or ``checkpoint_best.pth``.

    Returns:
        The checkpoint dict (tensors on the CPU).

    Raises:
        InvalidInputError: the file is missing.
        UnsafeFileError: the pickle needs a global outside the allow-list (it would run code), the
            file is not a torch checkpoint, or it lacks ``network_weights``.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("nnU-Net checkpoint not found", path=path)
    try:
        with torch.serialization.safe_globals(nnunet_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            ImportError) as exc:
        raise UnsafeFileError(f"refused: not a weights-only checkpoint ({_first_line(exc)})", path=path) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("network_weights"), dict):
        raise UnsafeFileError("not an nnU-Net checkpoint (no 'network_weights' dict)", path=path)
    return checkpoint


def _first_line(exc: BaseException) -> str:
    """The informative line of torch's refusal (it names the unsupported global)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line or "GLOBAL" in line:
            return line
    return lines[0] if lines else type(exc).__name__
