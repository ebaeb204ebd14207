"""Starting a training run from another run's weights (fine-tuning, nnU-Net's ``-pretrained_weights``).

Every weight of the new network is taken from the checkpoint when the checkpoint holds a tensor of
the same name and shape. The segmentation heads (``decoder.heads.*``) are the only layers allowed
to differ: they are skipped when the label sets differ (other number of output channels) and
loaded when they match. Any other missing or differently shaped tensor means the architectures
differ, which is refused: silently starting half the network from scratch would be a different
experiment than the one asked for.
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from autolung.errors import AutolungError
from autolung.training import checkpoint as ckpt

logger = logging.getLogger(__name__)

HEAD_MARKER = ".heads."


def _is_head(key: str) -> bool:
    return HEAD_MARKER in f".{key}"


def load_pretrained_weights(network: nn.Module, path: str | Path) -> dict:
    """Copy the matching weights of checkpoint ``path`` into ``network``.

    Args:
        network: the bare (not DDP-wrapped) network, freshly initialised.
        path: an autolung checkpoint (any of final/best/latest, or one from a model bundle);
            loaded with ``weights_only=True``.

    Returns:
        ``{"pretrained_weights": path, "loaded": n, "skipped_heads": [keys]}``.

    Raises:
        AutolungError: not an autolung checkpoint, or an architecture that differs outside the
            segmentation heads (naming the first differing tensors).
    """
    path = Path(path)
    weights = ckpt.load_checkpoint(path, map_location="cpu").get("network_weights")
    if not isinstance(weights, dict):
        raise AutolungError("the checkpoint holds no network_weights", path=path)
    target = network.state_dict()
    problems, skipped = [], []
    for key, value in target.items():
        found = weights.get(key)
        if found is not None and tuple(found.shape) == tuple(value.shape):
            continue
        if _is_head(key):
            skipped.append(key)
        else:
            problems.append(f"{key}: {'missing' if found is None else tuple(found.shape)} in the checkpoint, "
                            f"{tuple(value.shape)} here")
    problems += [f"{key}: in the checkpoint only" for key in weights if key not in target and not _is_head(key)]
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise AutolungError(f"pretrained weights do not fit this network's architecture: {shown}; pretrain with "
                            "the same plans (transfer them with transfer_plans)", path=path)
    state = {key: weights[key] if key not in skipped else value for key, value in target.items()}
    network.load_state_dict(state)
    loaded = len(target) - len(skipped)
    if skipped:
        logger.warning("pretrained weights: %d tensors loaded from %s; the segmentation heads (%d tensors) start "
                       "from scratch because the labels differ", loaded, path, len(skipped))
    else:
        logger.info("pretrained weights: all %d tensors loaded from %s", loaded, path)
    return {"pretrained_weights": str(path), "loaded": loaded, "skipped_heads": skipped}
