"""Safe loading of nnU-Net checkpoints: the plain types load, a code-running pickle never runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autolung.errors import UnsafeFileError
from autolung.nnunet.checkpoint import load_nnunet_checkpoint
from tests.nnunet.nnunet_layout import checkpoint_dict, dataset_json, network_weights, arch_kwargs, plans_json


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a payload that would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _nnunet_checkpoint(tmp_path: Path) -> tuple[Path, dict]:
    plans = plans_json("2d", 2, False, [16, 16], [0.7, 0.7])
    weights = network_weights(arch_kwargs(2, False), 1, 3, residual=False)
    payload = checkpoint_dict(weights, plans, dataset_json(), "2d", 0)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(payload, path)
    return path, payload


def test_loads_the_keys_and_plain_types_nnunet_writes(tmp_path: Path) -> None:
    path, payload = _nnunet_checkpoint(tmp_path)
    loaded = load_nnunet_checkpoint(path)
    assert loaded["trainer_name"] == "nnUNetTrainer"
    assert tuple(loaded["inference_allowed_mirroring_axes"]) == (0, 1, 2)
    assert loaded["current_epoch"] == 2
    assert loaded["_best_ema"] == pytest.approx(0.55) and isinstance(loaded["_best_ema"], np.float64)
    assert loaded["init_args"]["device"] == torch.device("cpu")
    assert set(loaded["network_weights"]) == set(payload["network_weights"])
    key = "decoder.seg_layers.1.weight"
    assert torch.equal(loaded["network_weights"][key], payload["network_weights"][key])


def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    path, payload = _nnunet_checkpoint(tmp_path)
    victim = tmp_path / "pwned.txt"
    payload["logging"]["evil"] = _CreatesFile(victim)
    torch.save(payload, path)
    with pytest.raises(UnsafeFileError) as caught:
        load_nnunet_checkpoint(path)
    assert not victim.exists(), "the pickle payload ran"
    assert "open" in str(caught.value)  # the refused global is named
    assert str(path) in str(caught.value)


def test_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_final.pth"
    path.write_bytes(b"not a zip and not a pickle")
    with pytest.raises(UnsafeFileError):
        load_nnunet_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UnsafeFileError, match="network_weights"):
        load_nnunet_checkpoint(path)


def test_zip_entries_escaping_the_folder_are_refused_before_writing(tmp_path: Path) -> None:
    import zipfile

    from autolung.nnunet.importer import extract_nnunet_zip

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Dataset1_X/nnUNetTrainer__nnUNetPlans__2d/plans.json", "{}")
        zipped.writestr("../escaped/checkpoint_final.pth", b"x")
    target = tmp_path / "target"
    with pytest.raises(UnsafeFileError, match="escapes"):
        extract_nnunet_zip(archive, target)
    assert not (tmp_path / "escaped").exists() and not any(target.rglob("*.json"))
