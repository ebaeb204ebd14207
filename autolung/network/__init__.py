"""Networks built from plans: ``build_network`` and the feature-map memory estimate.

Example:
    >>> net = build_network(plans.configuration("3d_fullres").architecture, in_channels=1, out_channels=2)
    >>> logits = net(torch.zeros(2, 1, *patch_size))  # list, highest resolution first, in training
"""
from __future__ import annotations

from torch import nn

from autolung.errors import InvalidPlansError
from autolung.network.blocks import ConvNormAct, ResidualBlock, ops_for_dim
from autolung.network.estimate import estimate_feature_map_elements
from autolung.network.unet import UNet
from autolung.planning.plans import NETWORK_KINDS, ArchitecturePlan

__all__ = ["ConvNormAct", "UNet", "build_network", "counted_modules", "estimate_feature_map_elements"]

# nnU-Net's He initialisation uses LeakyReLU's slope as ``a``; keeps activations' scale stable.
_HE_SLOPE = 1e-2


def _check(arch: ArchitecturePlan) -> None:
    if arch.network not in NETWORK_KINDS:
        raise InvalidPlansError(f"unknown network {arch.network!r}; known: {', '.join(NETWORK_KINDS)}")
    n = arch.num_stages
    if n < 2:
        raise InvalidPlansError(f"a U-Net needs at least 2 stages, the plan has {n}")
    lengths = {"strides": len(arch.strides), "kernel_sizes": len(arch.kernel_sizes),
               "blocks_per_stage": len(arch.blocks_per_stage)}
    for key, length in lengths.items():
        if length != n:
            raise InvalidPlansError(f"architecture '{key}' has {length} entries, expected {n} (one per stage)")
    if len(arch.decoder_convs_per_stage) != n - 1:
        raise InvalidPlansError(f"architecture 'decoder_convs_per_stage' needs {n - 1} entries")
    if any(k % 2 == 0 for kernel in arch.kernel_sizes for k in kernel):
        raise InvalidPlansError(f"conv kernel sizes must be odd, got {arch.kernel_sizes}")


def _initialise(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=_HE_SLOPE)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _zero_last_norm_of_residuals(net: nn.Module) -> None:
    # Residual branches start as identity (their last norm scales by 0): deep residual encoders
    # then train as stably as shallow ones.
    for module in net.modules():
        if isinstance(module, ResidualBlock):
            nn.init.zeros_(module.conv2.norm.weight)


def build_network(arch: ArchitecturePlan, in_channels: int, out_channels: int,
                  deep_supervision: bool = True, initialise: bool = True) -> UNet:
    """Build the U-Net that ``arch`` describes.

    Args:
        arch: the configuration's architecture plan (``network`` "unet" or "resenc_unet").
        in_channels: image channels.
        out_channels: output channels, one per region.
        deep_supervision: return every decoder resolution's logits in training.
        initialise: False skips autolung's initialisation (PyTorch's defaults remain), for a
            caller that loads every parameter with ``load_state_dict(strict=True)``: it is 40 %
            of the time a 5-stage network takes to build, paid again for every fold predicted.

    Returns:
        A :class:`UNet` with ``parameter_count()`` and ``feature_map_elements(patch)``.

    Raises:
        InvalidPlansError: when the architecture is inconsistent.
    """
    _check(arch)
    net = UNet(arch, in_channels, out_channels, ops_for_dim(arch.dim), deep_supervision=deep_supervision)
    if not initialise:
        return net
    net.apply(_initialise)
    if arch.network == "resenc_unet":
        _zero_last_norm_of_residuals(net)
    return net


def counted_modules(net: nn.Module) -> list[nn.Module]:
    """Modules whose outputs :func:`estimate_feature_map_elements` counts (used by tests and tools)."""
    return [m for m in net.modules() if getattr(m, "counts_feature_map", False)]

