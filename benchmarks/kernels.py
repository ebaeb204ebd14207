"""Seconds per sliding window of one network, in each kernel setting, as ratios to float32.

The kernel levers of whole-CT prediction (issue 17) measured on the networks that predict: an
autolung plans file (``--plans``) or an nnU-Net model folder's ``plans.json`` + ``dataset.json``
(``--nnunet-model``), with random weights (speed does not depend on them). Each setting runs the
same windows of random data; the first calls warm oneDNN up and are not timed.

Settings:
- ``float32``: the reference;
- ``bf16_autocast``: ``precision="bfloat16"`` as the predictor runs it;
- ``bf16_autocast_channels_last``: the same with network and input in channels-last memory format;
- ``bf16_weights_channels_last``: network converted to bfloat16, channels-last, no autocast;
- ``float32_channels_last``.

Usage::

    .venv/bin/python benchmarks/kernels.py --plans ROOT/results/SET/3d_fullres__cpu/plans.json
    .venv/bin/python benchmarks/kernels.py --nnunet-model RESULTS/Dataset.../nnUNetTrainer__nnUNetPlans__3d_fullres
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from autolung.network import build_network
from autolung.planning.plans import ConfigurationPlan, Plans

SETTINGS = ("float32", "bf16_autocast", "bf16_autocast_channels_last", "bf16_weights_channels_last",
            "float32_channels_last")


def configuration_from(args: argparse.Namespace) -> tuple[ConfigurationPlan, int, int]:
    """The configuration to time, with its input and output channel counts."""
    if args.nnunet_model:
        from autolung.nnunet.translate import translate_plans

        folder = Path(args.nnunet_model)
        translated = translate_plans(json.loads((folder / "plans.json").read_text()),
                                     json.loads((folder / "dataset.json").read_text()), args.configuration, [0, 1, 2])
        plan = translated.plans.configurations[args.configuration]
        return plan, translated.in_channels, translated.out_channels
    plans = Plans.load(args.plans)
    plan = plans.configurations[args.configuration]
    return plan, len(plans.channel_names), plans.region_mapping.num_channels


def time_setting(network: torch.nn.Module, batch: torch.Tensor, setting: str, calls: int) -> float:
    """Seconds per window of ``setting`` (mean over ``calls`` timed calls after two warm-up calls)."""
    channels_last = setting.endswith("channels_last")
    memory_format = torch.channels_last_3d if batch.ndim == 5 else torch.channels_last
    net = network.to(memory_format=memory_format) if channels_last else network.to(memory_format=torch.contiguous_format)
    inputs = batch.contiguous(memory_format=memory_format) if channels_last else batch
    if setting == "bf16_weights_channels_last":
        net, inputs = net.to(torch.bfloat16), inputs.to(torch.bfloat16)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.startswith("bf16_autocast"))
    with torch.inference_mode(), autocast:
        for _ in range(2):
            net(inputs)
        began = time.perf_counter()
        for _ in range(calls):
            net(inputs)
        elapsed = time.perf_counter() - began
    network.float()
    return elapsed / (calls * batch.shape[0])


def cpu_kind() -> str:
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    kind = "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else "AVX2 only"
    return f"{platform.processor() or 'cpu'} ({kind}), {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--plans", help="autolung plans.json")
    source.add_argument("--nnunet-model", help="nnU-Net trained model folder (plans.json, dataset.json)")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--batch", type=int, default=2, help="windows per call")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plan, in_channels, out_channels = configuration_from(args)
    network = build_network(plan.architecture, in_channels, out_channels, deep_supervision=False).eval()
    patch = [int(p) for p in plan.patch_size]
    batch = torch.randn(args.batch, in_channels, *patch)
    print(f"{cpu_kind()}; patch {patch}, {args.batch} windows per call, "
          f"{sum(p.numel() for p in network.parameters()) / 1e6:.1f} M parameters")
    figures = {}
    for setting in args.settings:
        figures[setting] = time_setting(network, batch, setting, args.calls)
        reference = figures.get("float32")
        ratio = f"{figures[setting] / reference:.2f}x float32" if reference else ""
        print(f"{setting:32s} {figures[setting]:8.3f} s/window  {ratio}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_kind(), "patch": patch, "batch": args.batch,
                                               "seconds_per_window": figures}, indent=1))


if __name__ == "__main__":
    main()
