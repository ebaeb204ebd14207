"""The results layout objects: fold folders, their files and state, and the typed training info."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolung.errors import InvalidInputError
from autolung.paths import DataRoot
from autolung.results import (
    TRAINING_INFO_VERSION,
    FoldFolder,
    TrainingInfo,
    checkpoint_file,
    fold_folder_name,
    fold_folders,
    parse_fold,
)

# As training wrote it before the file was versioned (and as tests/inference/fake_model.py writes it).
LEGACY_INFO = {"configuration": "3d_fullres", "planner": "default", "fold": 2, "plans_digest": "abc123",
               "in_channels": 1, "out_channels": 2, "autolung_version": "0.1.0", "loss": "bce_dice",
               "output_activation": "sigmoid", "pretrained_weights": "/m/checkpoint_final.pt", "loaded": 40,
               "skipped_heads": ["decoder.heads.0.weight"]}
# As the nnU-Net importer wrote it: no loss, raw logits, the import's origin.
IMPORTED_INFO = {"configuration": "2d", "planner": "nnUNetPlans", "fold": "all", "plans_digest": "d",
                 "in_channels": 1, "out_channels": 3, "autolung_version": "0.1.0", "output_activation": "logits",
                 "imported_from": "nnunetv2", "trainer_name": "nnUNetTrainer"}


def test_fold_names_and_parsing() -> None:
    assert fold_folder_name(0) == "fold_0" and fold_folder_name("3") == "fold_3" and fold_folder_name("all") == "fold_all"
    assert parse_fold(" 4 ") == 4 and parse_fold("all") == "all"
    with pytest.raises(InvalidInputError, match="neither a whole number nor 'all'"):
        parse_fold("best")
    assert checkpoint_file("best") == "checkpoint_best.pt"
    with pytest.raises(InvalidInputError, match="final, best, latest"):
        checkpoint_file("newest")


def test_data_root_fold_folder_paths(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    fold = root.fold_folder("Lungs", "3d_fullres", 1, planner="cpu")
    assert fold.path == tmp_path / "results" / "Lungs" / "3d_fullres__cpu" / "fold_1" and fold.fold == 1
    assert fold.configuration_folder == root.training_output("Lungs", "3d_fullres", "cpu")
    assert root.fold_folder("Lungs", "2d", "all").path.name == "fold_all"
    assert fold.final_checkpoint == fold.path / "checkpoint_final.pt" == fold.checkpoint()
    assert fold.best_checkpoint == fold.checkpoint("best") == fold.checkpoint("checkpoint_best.pt")
    assert fold.latest_checkpoint.name == "checkpoint_latest.pt"
    assert fold.training_info_file.name == "training_info.json"
    assert fold.training_log_file.name == "training_log.jsonl" and fold.progress_plot.name == "progress.png"
    assert fold.validation_folder == fold.path / "validation"
    assert fold.previous_stage_folder == fold.path / "previous_stage"
    with pytest.raises(InvalidInputError):
        root.fold_folder("Lungs", "2d", "x")


def test_finished_and_resumable_follow_the_checkpoints(tmp_path: Path) -> None:
    fold = FoldFolder.of(tmp_path, 0)
    assert not fold.is_finished() and not fold.is_resumable()
    fold.path.mkdir()
    fold.latest_checkpoint.write_bytes(b"x")
    assert fold.is_resumable() and not fold.is_finished()
    fold.best_checkpoint.write_bytes(b"x")
    assert fold.is_finished("checkpoint_best.pt") and not fold.is_finished()
    fold.final_checkpoint.write_bytes(b"x")
    assert fold.is_finished()


def test_fold_folders_lists_well_named_folders_in_name_order(tmp_path: Path) -> None:
    for name in ("fold_1", "fold_0", "fold_all", "fold_x", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "fold_2").write_text("a file, not a fold")
    assert [f.fold for f in fold_folders(tmp_path)] == [0, 1, "all"]
    assert [f.path.name for f in fold_folders(tmp_path, numbered_only=True)] == ["fold_0", "fold_1"]
    assert FoldFolder.from_path(tmp_path / "fold_x") is None and FoldFolder.from_path(tmp_path / "other") is None
    assert FoldFolder.from_path(tmp_path / "fold_all").is_numbered is False
    assert fold_folders(tmp_path / "missing") == []


def test_legacy_training_info_reads_and_keeps_every_key(tmp_path: Path) -> None:
    fold = FoldFolder.of(tmp_path, 2)
    fold.path.mkdir()
    fold.training_info_file.write_text(json.dumps(LEGACY_INFO))
    info = fold.read_training_info()
    assert (info.configuration, info.fold, info.plans_digest, info.in_channels, info.out_channels) == \
        ("3d_fullres", 2, "abc123", 1, 2)
    assert info.loss == "bce_dice" and info.output_activation == "sigmoid"
    assert info.extra == {"pretrained_weights": "/m/checkpoint_final.pt", "loaded": 40,
                          "skipped_heads": ["decoder.heads.0.weight"]}
    assert info.to_json() == {"training_info_version": TRAINING_INFO_VERSION, **LEGACY_INFO}
    assert fold.trained_plans_digest() == "abc123"


def test_imported_model_info_reads(tmp_path: Path) -> None:
    info = TrainingInfo.from_json(IMPORTED_INFO)
    assert info.fold == "all" and info.loss is None and info.output_activation == "logits"
    assert info.extra == {"imported_from": "nnunetv2", "trainer_name": "nnUNetTrainer"}
    assert {k: v for k, v in info.to_json().items() if k != "training_info_version"} == IMPORTED_INFO


def test_training_info_writes_versioned_json_and_round_trips(tmp_path: Path) -> None:
    fold = FoldFolder.of(tmp_path / "3d_fullres__default", "all")
    info = TrainingInfo(configuration="3d_fullres", planner="default", fold="all", plans_digest="abc",
                        in_channels=2, out_channels=3, autolung_version="0.1.0", loss="ce_dice",
                        output_activation="softmax")
    fold.write_training_info(info.with_extra({"loaded": 12}))
    written = json.loads(fold.training_info_file.read_text())
    assert written["training_info_version"] == TRAINING_INFO_VERSION and written["loaded"] == 12
    assert fold.read_training_info() == info.with_extra({"loaded": 12})
    assert fold.training_info_file.read_text().startswith("{\n  ")  # human-readable


def test_partial_training_info_reads_as_far_as_it_goes(tmp_path: Path) -> None:
    info = TrainingInfo.from_json({"plans_digest": "abc"})
    assert info.plans_digest == "abc" and info.in_channels is None and info.output_activation is None


@pytest.mark.parametrize("payload, problem", [
    ([1, 2], "not a JSON object"),
    ({"training_info_version": TRAINING_INFO_VERSION + 1}, "newer than this autolung reads"),
    ({"in_channels": "1"}, "`in_channels` must be a positive whole number"),
    ({"out_channels": 0}, "`out_channels` must be a positive whole number"),
    ({"plans_digest": 12}, "`plans_digest` must be a string"),
    ({"fold": "best"}, "neither a whole number nor 'all'"),
])
def test_bad_training_info_is_refused_naming_the_file(tmp_path: Path, payload: object, problem: str) -> None:
    fold = FoldFolder.of(tmp_path, 0)
    fold.path.mkdir()
    fold.training_info_file.write_text(json.dumps(payload))
    with pytest.raises(InvalidInputError, match=problem) as caught:
        fold.read_training_info()
    assert caught.value.path == fold.training_info_file
    assert fold.training_info_or_none() is None and fold.trained_plans_digest() is None


def test_missing_or_broken_training_info(tmp_path: Path) -> None:
    fold = FoldFolder.of(tmp_path, 0)
    with pytest.raises(InvalidInputError, match="training_info.json missing in the fold folder"):
        fold.read_training_info()
    assert fold.trained_plans_digest() is None
    fold.path.mkdir()
    fold.training_info_file.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        fold.read_training_info()
