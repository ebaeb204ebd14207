"""The U-Net built from a plan: shapes, deep supervision, and the memory estimate."""
from __future__ import annotations

import pytest
import torch

from autolung.errors import InvalidPlansError
from autolung.network import build_network, counted_modules, estimate_feature_map_elements
from autolung.planning.plans import ArchitecturePlan


def _arch_3d(network: str = "unet") -> ArchitecturePlan:
    blocks = [2, 2, 2, 2] if network == "unet" else [1, 3, 4, 6]
    decoder = [2, 2, 2] if network == "unet" else [1, 1, 1]
    return ArchitecturePlan(network, 3, [8, 16, 32, 32],
                            [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                            [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], blocks, decoder)


def _arch_2d() -> ArchitecturePlan:
    return ArchitecturePlan("unet", 2, [8, 16, 32], [[1, 1], [2, 2], [2, 2]], [[3, 3]] * 3, [2, 2, 2], [2, 2])


def _hooked_elements(net: torch.nn.Module, x: torch.Tensor) -> int:
    total = [0]

    def hook(_module, _inputs, output):
        total[0] += output[0].numel()  # one sample, as the estimate counts

    handles = [m.register_forward_hook(hook) for m in counted_modules(net)]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return total[0]


@pytest.mark.parametrize("network", ["unet", "resenc_unet"])
def test_3d_deep_supervision_outputs_highest_resolution_first(network: str) -> None:
    torch.manual_seed(0)
    net = build_network(_arch_3d(network), in_channels=2, out_channels=3).train()
    outputs = net(torch.randn(2, 2, 8, 32, 32))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 8, 32, 32), (2, 3, 8, 16, 16), (2, 3, 4, 8, 8)]


def test_single_tensor_without_deep_supervision_or_in_eval() -> None:
    net = build_network(_arch_3d(), in_channels=1, out_channels=2, deep_supervision=False).train()
    assert tuple(net(torch.randn(1, 1, 8, 32, 32)).shape) == (1, 2, 8, 32, 32)
    net.deep_supervision = True
    assert isinstance(net(torch.randn(1, 1, 8, 32, 32)), list)
    net.eval()
    assert tuple(net(torch.randn(1, 1, 8, 32, 32)).shape) == (1, 2, 8, 32, 32)


def test_2d_network_shapes() -> None:
    net = build_network(_arch_2d(), in_channels=3, out_channels=1).train()
    outputs = net(torch.randn(2, 3, 32, 48))
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 32, 48), (2, 1, 16, 24)]
    assert isinstance(net.encoder.stages[0][0].conv, torch.nn.Conv2d)


def test_first_conv_of_a_stage_carries_the_stride_and_kernels_follow_plan() -> None:
    net = build_network(_arch_3d(), 1, 1)
    assert net.encoder.stages[1][0].conv.stride == (1, 2, 2)
    assert net.encoder.stages[1][1].conv.stride == (1, 1, 1)
    assert net.encoder.stages[0][0].conv.kernel_size == (1, 3, 3)
    assert net.encoder.stages[0][0].conv.padding == (0, 1, 1)
    assert net.decoder.ups[-1].conv.kernel_size == (1, 2, 2)


@pytest.mark.parametrize("arch", [_arch_3d("unet"), _arch_3d("resenc_unet"), _arch_2d()],
                         ids=["unet3d", "resenc3d", "unet2d"])
def test_estimate_matches_forward_hooks(arch: ArchitecturePlan) -> None:
    patch = (8, 32, 32) if arch.dim == 3 else (32, 48)
    net = build_network(arch, in_channels=1, out_channels=2).train()
    measured = _hooked_elements(net, torch.randn(1, 1, *patch))
    assert measured == estimate_feature_map_elements(arch, patch, out_channels=2) == net.feature_map_elements(patch)


def test_estimate_without_deep_supervision_counts_only_the_last_head() -> None:
    arch = _arch_3d()
    with_ds = estimate_feature_map_elements(arch, (8, 32, 32), out_channels=2)
    without = estimate_feature_map_elements(arch, (8, 32, 32), out_channels=2, deep_supervision=False)
    assert with_ds - without == 2 * (8 * 16 * 16 + 4 * 8 * 8)


def test_parameter_count_plain_unet_by_hand() -> None:
    arch = ArchitecturePlan("unet", 2, [4, 8], [[1, 1], [2, 2]], [[3, 3], [3, 3]], [1, 1], [1])
    net = build_network(arch, in_channels=1, out_channels=1)
    conv = lambda cin, cout, k: cin * cout * k + cout  # noqa: E731
    norm = lambda c: 2 * c  # noqa: E731
    expected = (conv(1, 4, 9) + norm(4) + conv(4, 8, 9) + norm(8)  # encoder
                + conv(8, 4, 4)  # transposed conv 2x2
                + conv(8, 4, 9) + norm(4) + conv(4, 1, 1))  # decoder block and head
    assert net.parameter_count() == expected


def test_residual_encoder_blocks_per_stage() -> None:
    net = build_network(_arch_3d("resenc_unet"), 1, 1)
    assert [len(stage) for stage in net.encoder.stages] == [1, 3, 4, 6]
    assert [len(block) for block in net.decoder.blocks] == [1, 1, 1]


def test_channels_last_gives_same_result() -> None:
    torch.manual_seed(0)
    net = build_network(_arch_3d(), 1, 2, deep_supervision=False).eval()
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        reference = net(x)
        other = net.to(memory_format=torch.channels_last_3d)(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(reference, other, rtol=1e-4, atol=1e-4)


def test_inconsistent_architecture_is_a_clear_error() -> None:
    arch = _arch_3d()
    arch.kernel_sizes = arch.kernel_sizes[:-1]
    with pytest.raises(InvalidPlansError, match="kernel_sizes"):
        build_network(arch, 1, 1)


@pytest.mark.slow
def test_torch_compile_traces_without_graph_breaks() -> None:
    arch = ArchitecturePlan("resenc_unet", 2, [4, 8], [[1, 1], [2, 2]], [[3, 3], [3, 3]], [1, 2], [1])
    net = build_network(arch, 1, 1).train()
    compiled = torch.compile(net, fullgraph=True, backend="eager")  # fullgraph: fails on any graph break
    assert [tuple(o.shape) for o in compiled(torch.randn(2, 1, 16, 16))] == [(2, 1, 16, 16)]


@pytest.mark.parametrize("network", ["unet", "resenc_unet"])
def test_a_network_built_without_initialisation_takes_trained_weights_whole(network: str) -> None:
    torch.manual_seed(0)
    trained = build_network(_arch_3d(network), 1, 2, deep_supervision=False).eval()
    loaded = build_network(_arch_3d(network), 1, 2, deep_supervision=False, initialise=False)
    loaded.load_state_dict(trained.state_dict(), strict=True)
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), trained(x), atol=0, rtol=0)
