"""nnU-Net (dynamic-network-architectures) state-dict names -> autolung's :class:`~autolung.network.unet.UNet`.

Both networks compute the same thing layer for layer; only the module names differ:

================================================  ==========================================
nnU-Net (PlainConvUNet / ResidualEncoderUNet)     autolung UNet
================================================  ==========================================
encoder.stages.S.0.convs.J.{conv,norm}.P          encoder.stages.S.J.{conv,norm}.P
encoder.stem.convs.0.{conv,norm}.P                encoder.stem.{conv,norm}.P
encoder.stages.S.blocks.B.conv{1,2}.{conv,norm}.P encoder.stages.S.B.conv{1,2}.{conv,norm}.P
encoder.stages.S.blocks.B.skip.K.{conv,norm}.P    encoder.stages.S.B.shortcut.{conv,norm}.P
decoder.stages.T.convs.J.{conv,norm}.P            decoder.blocks.T.J.{conv,norm}.P
decoder.transpconvs.T.P                           decoder.ups.T.conv.P
decoder.seg_layers.T.P                            decoder.heads.T.conv.P
================================================  ==========================================

nnU-Net's state dict also holds aliases of the same tensors (``*.all_modules.*`` and the
decoder's reference ``decoder.encoder.*``); they are dropped. Any other name means the network is
not one autolung can represent (e.g. a custom trainer's network): it is refused, naming the key.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from autolung.errors import InvalidPlansError

_RULES = (
    (re.compile(r"^encoder\.stages\.(\d+)\.0\.convs\.(\d+)\.(conv|norm)\.(weight|bias)$"),
     r"encoder.stages.\1.\2.\3.\4"),
    (re.compile(r"^encoder\.stem\.convs\.0\.(conv|norm)\.(weight|bias)$"), r"encoder.stem.\1.\2"),
    (re.compile(r"^encoder\.stages\.(\d+)\.blocks\.(\d+)\.(conv1|conv2)\.(conv|norm)\.(weight|bias)$"),
     r"encoder.stages.\1.\2.\3.\4.\5"),
    (re.compile(r"^encoder\.stages\.(\d+)\.blocks\.(\d+)\.skip\.\d+\.(conv|norm)\.(weight|bias)$"),
     r"encoder.stages.\1.\2.shortcut.\3.\4"),
    (re.compile(r"^decoder\.stages\.(\d+)\.convs\.(\d+)\.(conv|norm)\.(weight|bias)$"), r"decoder.blocks.\1.\2.\3.\4"),
    (re.compile(r"^decoder\.transpconvs\.(\d+)\.(weight|bias)$"), r"decoder.ups.\1.conv.\2"),
    (re.compile(r"^decoder\.seg_layers\.(\d+)\.(weight|bias)$"), r"decoder.heads.\1.conv.\2"),
)
# Aliases of tensors already named elsewhere in the same state dict.
_ALIASES = (re.compile(r"\.all_modules\.\d+\."), re.compile(r"^decoder\.encoder\."))
# Wrappers nnU-Net may leave in front of names (torch.compile, DistributedDataParallel).
_PREFIXES = ("_orig_mod.", "module.")


def _strip_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def autolung_name(nnunet_name: str) -> str | None:
    """autolung's parameter name for one nnU-Net state-dict key; None for an alias to drop.

    Args:
        nnunet_name: a key of nnU-Net's ``network_weights``.

    Returns:
        The autolung key, or None when the key is an alias of another key.

    Raises:
        InvalidPlansError: a key of no known layer (the network is not PlainConvUNet/ResidualEncoderUNet).
    """
    name = _strip_prefixes(nnunet_name)
    if any(alias.search(name) for alias in _ALIASES):
        return None
    for pattern, replacement in _RULES:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    raise InvalidPlansError(f"state-dict key {nnunet_name!r} belongs to no layer of PlainConvUNet or "
                            "ResidualEncoderUNet; this network cannot be represented by autolung")


def convert_state_dict(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename nnU-Net network weights to autolung's UNet names (aliases dropped).

    Args:
        weights: nnU-Net's ``network_weights``.

    Returns:
        A new state dict for :class:`~autolung.network.unet.UNet` (load it with ``strict=True``).
    """
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidPlansError(f"state-dict entry {key!r} is a {type(tensor).__name__}, not a tensor")
        target = autolung_name(key)
        if target is None:
            continue
        if target in converted:
            raise InvalidPlansError(f"state-dict keys map twice onto {target!r} (second: {key!r})")
        converted[target] = tensor.detach().clone().float()
    return converted
