from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from autolung.errors import InvalidPlansError
from autolung.paths import DataRoot
from autolung.preprocessing.run import PreprocessingError, preprocess_dataset
from autolung.preprocessing.storage import PreprocessedDataset, case_paths, is_case_complete, write_case

from .helpers import make_configuration, make_plans


def _plans_for_tiny(data_root: DataRoot, name: str = "Tiny_CT"):
    plans = make_plans([make_configuration("3d_fullres", [2.5, 1.4, 1.4], anisotropic_axis=0),
                        make_configuration("2d", [2.5, 0.7, 0.7], dim=2)])
    plans.save(data_root.plans_file(name))
    return plans


def test_write_case_and_read_back_memory_mapped(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    seg = np.ones((1, 3, 4, 5), dtype=np.int8)
    write_case(tmp_path, "a", data, seg, {"plans_digest": "x", "case_id": "a"})
    dataset = PreprocessedDataset(tmp_path)
    assert dataset.case_ids == ["a"] and "a" in dataset and len(dataset) == 1
    loaded, loaded_seg, props = dataset.load("a")
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, data)
    assert loaded_seg.dtype == np.int8 and props["case_id"] == "a"
    assert is_case_complete(tmp_path, "a", "x") and not is_case_complete(tmp_path, "a", "other")


def test_missing_plans_is_a_clear_error(data_root: DataRoot, tiny_msd: Path) -> None:
    with pytest.raises(InvalidPlansError, match="no plans"):
        preprocess_dataset(tiny_msd, data_root, progress=False)


def test_preprocess_dataset_writes_every_case_and_resumes(data_root: DataRoot, tiny_msd: Path) -> None:
    plans = _plans_for_tiny(data_root)
    summary = preprocess_dataset(tiny_msd, data_root, num_processes=2, progress=False)
    assert sorted(summary.processed["3d_fullres"]) == ["case_000", "case_001", "case_002", "case_003"]
    full = data_root.preprocessed_configuration("Tiny_CT", "3d_fullres")
    flat = data_root.preprocessed_configuration("Tiny_CT", "2d")
    for case in ("case_000", "case_003"):
        assert is_case_complete(full, case, plans.digest()) and is_case_complete(flat, case, plans.digest())
    data, seg, props = PreprocessedDataset(full).load("case_000")
    assert data.shape[1:] == seg.shape[1:] == tuple(props["shape_after_resampling"])
    assert props["shape_after_resampling"][1:] == [16, 16]
    assert PreprocessedDataset(flat).load("case_000")[0].shape[1:] == (12, 32, 32)

    mtimes = {p: p.stat().st_mtime_ns for p in full.iterdir()}
    (full / ".partial-case_001-abc.npy").write_bytes(b"half")  # an interrupted write
    case_paths(full, "case_002").properties.unlink()  # a case that never finished
    again = preprocess_dataset(tiny_msd, data_root, configurations=["3d_fullres"], num_processes=1, progress=False)
    assert again.partial_files_removed == 1 and not (full / ".partial-case_001-abc.npy").exists()
    assert again.processed == {"3d_fullres": ["case_002"]}
    assert sorted(again.skipped["3d_fullres"]) == ["case_000", "case_001", "case_003"]
    for path, mtime in mtimes.items():
        if "case_002" not in path.name:
            assert path.stat().st_mtime_ns == mtime, path


def test_changed_plans_redo_every_case(data_root: DataRoot, tiny_msd: Path) -> None:
    _plans_for_tiny(data_root)
    preprocess_dataset(tiny_msd, data_root, configurations=["3d_fullres"], num_processes=1, progress=False)
    plans = make_plans([make_configuration("3d_fullres", [2.5, 1.0, 1.0], anisotropic_axis=0)])
    plans.save(data_root.plans_file("Tiny_CT"))
    summary = preprocess_dataset(tiny_msd, data_root, num_processes=1, progress=False)
    assert len(summary.processed["3d_fullres"]) == 4
    props = json.loads((data_root.preprocessed_configuration("Tiny_CT", "3d_fullres") / "case_000.json").read_text())
    assert props["plans_digest"] == plans.digest() and props["spacing_after_resampling"] == [2.5, 1.0, 1.0]


def test_identical_configurations_share_their_arrays(data_root: DataRoot, tiny_msd: Path) -> None:
    plans = make_plans([make_configuration("3d_fullres", [2.5, 0.7, 0.7], anisotropic_axis=0),
                        make_configuration("2d", [2.5, 0.7, 0.7], dim=2)])
    plans.save(data_root.plans_file("Tiny_CT"))
    preprocess_dataset(tiny_msd, data_root, num_processes=1, progress=False)
    full = data_root.preprocessed_configuration("Tiny_CT", "3d_fullres") / "case_000.npy"
    flat = data_root.preprocessed_configuration("Tiny_CT", "2d") / "case_000.npy"
    assert os.path.samefile(full, flat)
    assert PreprocessedDataset(flat.parent).case_ids == ["case_000", "case_001", "case_002", "case_003"]


def test_unknown_configuration_is_an_error_and_unplanned_standard_one_is_skipped(
        data_root: DataRoot, tiny_msd: Path) -> None:
    _plans_for_tiny(data_root)
    with pytest.raises(InvalidPlansError, match="3d_fulres"):
        preprocess_dataset(tiny_msd, data_root, configurations=["3d_fulres"], progress=False)
    summary = preprocess_dataset(tiny_msd, data_root, configurations=["3d_lowres", "2d"], num_processes=1,
                                 progress=False)
    assert list(summary.processed) == ["2d"]


@pytest.mark.parametrize("num_processes", [1, 2])
def test_failing_case_names_the_case(data_root: DataRoot, tiny_msd: Path, num_processes: int) -> None:
    _plans_for_tiny(data_root)
    (tiny_msd / "imagesTr" / "case_002.nii.gz").write_bytes(b"not an image")
    with pytest.raises(PreprocessingError, match="case_002"):
        preprocess_dataset(tiny_msd, data_root, num_processes=num_processes, progress=False)


def test_second_live_run_is_refused(data_root: DataRoot, tiny_msd: Path) -> None:
    import socket

    from autolung.errors import LockedError

    _plans_for_tiny(data_root)
    folder = data_root.preprocessed_configuration("Tiny_CT", "3d_fullres")
    folder.mkdir(parents=True)
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "purpose": "preprocess"}
    (folder / ".autolung.lock").write_text(json.dumps(owner))
    (folder / ".partial-case_000-x.npy").write_bytes(b"another run's write in flight")
    with pytest.raises(LockedError):
        preprocess_dataset(tiny_msd, data_root, num_processes=1, progress=False)
    assert (folder / ".partial-case_000-x.npy").exists()


def test_truncated_array_is_redone(data_root: DataRoot, tiny_msd: Path) -> None:
    plans = _plans_for_tiny(data_root)
    preprocess_dataset(tiny_msd, data_root, configurations=["3d_fullres"], num_processes=1, progress=False)
    folder = data_root.preprocessed_configuration("Tiny_CT", "3d_fullres")
    path = case_paths(folder, "case_001").data
    path.write_bytes(path.read_bytes()[:-100])  # e.g. a power loss before the data reached the disk
    assert not is_case_complete(folder, "case_001", plans.digest())
    summary = preprocess_dataset(tiny_msd, data_root, configurations=["3d_fullres"], num_processes=1, progress=False)
    assert summary.processed["3d_fullres"] == ["case_001"]


def test_preprocess_reports_one_step_per_case(data_root: DataRoot, tiny_msd: Path, recording_progress) -> None:
    _plans_for_tiny(data_root)
    preprocess_dataset(tiny_msd, data_root, configurations=["3d_fullres"], num_processes=1,
                       progress=recording_progress)
    assert recording_progress.calls == [("start", "preprocess Tiny_CT", 4),
                                        *[("advance", "preprocess Tiny_CT", 1)] * 4,
                                        ("finish", "preprocess Tiny_CT")]
