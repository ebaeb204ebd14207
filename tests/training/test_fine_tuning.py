"""transfer_plans + train --pretrained-weights: pretrain on one real set, fine-tune on another."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from cli_main import run_main
from conftest import shared_dataset


def _copy(tmp_path, name, first, labels):
    source = shared_dataset("FindingLungs2D")
    target = tmp_path / "raw" / name
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for index in range(first, first + 4):
        case = f"lungs_{index:03d}"
        shutil.copyfile(source / "imagesTr" / f"{case}_0000.png", target / "imagesTr" / f"{case}_0000.png")
        shutil.copyfile(source / "labelsTr" / f"{case}.png", target / "labelsTr" / f"{case}.png")
    (target / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels,
                                                     "numTraining": 4, "file_ending": ".png"}))
    return target


@pytest.mark.slow
def test_transfer_plans_and_fine_tune_with_other_labels(tmp_path, capsys, monkeypatch):
    from autolung.training.pretrained import load_pretrained_weights
    from autolung.network import build_network
    from autolung.planning.plans import Plans

    source = _copy(tmp_path, "Lungs_src", 0, {"background": 0, "lung": 1})
    target = _copy(tmp_path, "Lungs_tgt", 10, {"background": 0, "lung": 1, "other": 2})
    root = tmp_path / "root"
    fast = ["--epochs", "1", "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
            "--no-final-validation", "--root", root]
    code, output = run_main(["plan_and_preprocess", "-d", source, "-c", "2d", "-np", "1", "--planner", "cpu",
                             "--root", root, "--no-progress"], capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main(["train", "-d", source, "-c", "2d", "-f", "0", "--planner", "cpu", *fast],
                            capsys, monkeypatch)
    assert code == 0, output
    checkpoint = root / "results" / "Lungs_src" / "2d__cpu" / "fold_0" / "checkpoint_final.pt"

    code, output = run_main(["transfer_plans", "-s", "Lungs_src", "-t", target, "-sp", "cpu", "-tp", "from_src",
                             "--root", root], capsys, monkeypatch)
    assert code == 0, output
    source_plans = Plans.load(root / "preprocessed" / "Lungs_src" / "plans_cpu.json")
    plans = Plans.load(root / "preprocessed" / "Lungs_tgt" / "plans_from_src.json")
    assert plans.dataset_name == "Lungs_tgt" and plans.labels == {"background": 0, "lung": 1, "other": 2}
    assert plans.region_mapping.num_channels == 2
    assert plans.configurations["2d"].architecture == source_plans.configurations["2d"].architecture
    assert plans.configurations["2d"].spacing == source_plans.configurations["2d"].spacing
    code, output = run_main(["transfer_plans", "-s", "Lungs_src", "-t", target, "-sp", "cpu", "-tp", "from_src",
                             "--root", root], capsys, monkeypatch)
    assert code == 1 and "plans already exist for the target" in output

    code, output = run_main(["preprocess", "-d", target, "-c", "2d", "-np", "1", "--planner", "from_src",
                             "--root", root, "--no-progress"], capsys, monkeypatch)
    assert code == 0, output
    code, output = run_main(["train", "-d", target, "-c", "2d", "-f", "0", "--planner", "from_src",
                             "--pretrained-weights", checkpoint, *fast], capsys, monkeypatch)
    assert code == 0, output
    info = json.loads((root / "results" / "Lungs_tgt" / "2d__from_src" / "fold_0" / "training_info.json").read_text())
    assert info["pretrained_weights"] == str(checkpoint) and info["loaded"] > 0
    assert info["skipped_heads"] and all(".heads." in key for key in info["skipped_heads"])

    # What was loaded: every tensor but the heads equals the checkpoint's, the heads keep their start.
    network = build_network(plans.configurations["2d"].architecture, 1, 2, deep_supervision=True)
    start = {k: v.clone() for k, v in network.state_dict().items()}
    report = load_pretrained_weights(network, checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["network_weights"]
    for key, value in network.state_dict().items():
        expected = start[key] if key in report["skipped_heads"] else saved[key]
        assert torch.equal(value, expected), key


def test_pretrained_weights_of_another_architecture_are_refused(tmp_path):
    from autolung.errors import AutolungError
    from autolung.network import build_network
    from autolung.planning.plans import ArchitecturePlan
    from autolung.training.pretrained import load_pretrained_weights

    def arch(features):
        return ArchitecturePlan(network="unet", dim=3, features_per_stage=features, strides=[[1] * 3, [2] * 3],
                                kernel_sizes=[[3] * 3, [3] * 3], blocks_per_stage=[1, 1], decoder_convs_per_stage=[1])

    small = build_network(arch([4, 8]), 1, 2, deep_supervision=True)
    path = tmp_path / "small.pt"
    torch.save({"format": "autolung-checkpoint", "version": 1, "network_weights": small.state_dict()}, path)
    same = build_network(arch([4, 8]), 1, 3, deep_supervision=True)  # other labels: heads skipped
    assert all(".heads." in key for key in load_pretrained_weights(same, path)["skipped_heads"])
    with pytest.raises(AutolungError, match="do not fit this network's architecture: encoder.stages.0.0.conv.weight"):
        load_pretrained_weights(build_network(arch([6, 12]), 1, 2, deep_supervision=True), path)
