"""Regenerate ``data/dna_reference.pt``: real dynamic-network-architectures networks and their outputs.

Run with the nnU-Net reference environment (it has dynamic-network-architectures), not in CI::

    /work/nnunet_venv/bin/python tests/nnunet/make_dna_fixture.py

For a small 2D PlainConvUNet and a small 3D ResidualEncoderUNet built by nnU-Net's own library
from plans-style ``arch_kwargs``, it stores the state dict (as nnU-Net's checkpoints hold it), a
fixed input and the network's output in eval mode. ``test_dna_reference.py`` checks that
autolung's translated network gives the same output from the same state dict.
"""
from __future__ import annotations

from pathlib import Path

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from torch import nn


def _kwargs(dim: int, residual: bool) -> dict:
    kwargs = {"n_stages": 3, "features_per_stage": [4, 8, 16],
              "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
              "kernel_sizes": [[3] * dim] * 3,
              "strides": [[1] * dim, [2] * dim, [2] * dim] if dim == 2 else [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
              "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
              "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
              "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
              "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    kwargs["n_blocks_per_stage" if residual else "n_conv_per_stage"] = [1, 2, 2] if residual else [2, 2, 2]
    return kwargs


def _build(dim: int, residual: bool, kwargs: dict) -> nn.Module:
    ops = {"conv_op": nn.Conv2d if dim == 2 else nn.Conv3d,
           "norm_op": nn.InstanceNorm2d if dim == 2 else nn.InstanceNorm3d, "nonlin": nn.LeakyReLU}
    args = {k: v for k, v in kwargs.items() if k not in ops}
    cls = ResidualEncoderUNet if residual else PlainConvUNet
    return cls(input_channels=1, num_classes=3, deep_supervision=False, **args, **ops)


def main() -> None:
    torch.manual_seed(0)
    entries = {}
    for name, dim, residual, shape in (("plain_2d", 2, False, (2, 1, 16, 16)), ("resenc_3d", 3, True, (1, 1, 8, 16, 16))):
        kwargs = _kwargs(dim, residual)
        network = _build(dim, residual, kwargs)
        with torch.no_grad():  # non-trivial norm parameters, so a wrong mapping shows
            for module in network.modules():
                if isinstance(module, (nn.InstanceNorm2d, nn.InstanceNorm3d)):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
        network.eval()
        x = torch.randn(shape)
        with torch.no_grad():
            y = network(x)
        entries[name] = {"residual": residual, "arch_kwargs": kwargs, "state_dict": network.state_dict(),
                         "input": x, "output": y}
    target = Path(__file__).resolve().parent / "data" / "dna_reference.pt"
    torch.save(entries, target)
    print(target, target.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
