"""A tiny randomly initialised "trained" model folder in the checkpoint contract, for tests."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from autolung.labels import RegionMapping
from autolung.network import build_network
from autolung.planning.plans import ArchitecturePlan, ConfigurationPlan, NormalizationPlan, Plans


def tiny_plans(dim: int = 3, spacing=(2.5, 0.7, 0.7), channels: int = 1, labels=(1, 2),
               scheme: str = "ct", name: str | None = None) -> Plans:
    """Plans with one small configuration ("3d_fullres" or "2d")."""
    name = name or ("3d_fullres" if dim == 3 else "2d")
    patch = [8, 16, 16] if dim == 3 else [16, 16]
    arch = ArchitecturePlan(network="unet", dim=dim, features_per_stage=[4, 8],
                            strides=[[1] * dim, [2] * dim], kernel_sizes=[[3] * dim, [3] * dim],
                            blocks_per_stage=[1, 1], decoder_convs_per_stage=[1])
    norm = [NormalizationPlan(channel_name=f"c{i}", scheme=scheme,
                              **({"clip_low": -1000.0, "clip_high": 500.0, "mean": -500.0, "std": 300.0}
                                 if scheme == "ct" else {})) for i in range(channels)]
    configuration = ConfigurationPlan(name=name, dim=dim, spacing=list(spacing), patch_size=patch, batch_size=2,
                                      architecture=arch, normalization=norm, median_shape_after_resampling=[12, 32, 32])
    return Plans(dataset_name="Tiny_CT", planner="default", channel_names=[f"c{i}" for i in range(channels)],
                 labels={"background": 0, **{f"l{v}": v for v in labels}},
                 region_mapping=RegionMapping.one_per_label(list(labels)), configurations={name: configuration})


def write_fake_model(folder: Path, plans: Plans, folds=(0,), seed: int = 0, bias: float | None = None,
                     digest: str | None = None, softmax: bool = False) -> Path:
    """Write ``folder/plans.json`` and ``fold_k/{checkpoint_final.pt, training_info.json}``.

    Args:
        bias: when set, the output head's bias (so predictions are non-trivial at random weights).
        digest: plans digest to record (default: the real one).
        softmax: a softmax-trained network (background + one channel per label).
    """
    folder.mkdir(parents=True, exist_ok=True)
    plans.save(folder / "plans.json")
    name = next(iter(plans.configurations))
    digest = digest or plans.digest()
    for fold in folds:
        torch.manual_seed(seed + (fold if isinstance(fold, int) else 99))
        net = build_network(plans.configurations[name].architecture, len(plans.channel_names),
                            plans.region_mapping.num_channels + int(softmax), deep_supervision=False)
        if bias is not None:
            heads = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.Conv2d))]
            torch.nn.init.constant_(heads[-1].bias, bias)
        fold_folder = folder / f"fold_{fold}"
        fold_folder.mkdir(exist_ok=True)
        torch.save({"format": "autolung-checkpoint", "version": 1, "autolung_version": "0.1.0",
                    "plans_digest": digest, "configuration": name, "fold": fold, "epoch": 1,
                    "network_weights": net.state_dict(), "optimizer_state": {"step": 3}},
                   fold_folder / "checkpoint_final.pt")
        (fold_folder / "training_info.json").write_text(json.dumps({
            "configuration": name, "planner": "default", "fold": fold, "plans_digest": digest,
            "in_channels": len(plans.channel_names), "out_channels": plans.region_mapping.num_channels + int(softmax),
            "autolung_version": "0.1.0", "output_activation": "softmax" if softmax else "sigmoid"}))
    return folder
