"""`autolung verify`: one broken dataset per problem kind; exit 1 and a line naming the file."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import skimage.io

import autolung_cli.app as app_module
from autolung.dataset.verify import verify_dataset
from conftest import REPO, write_tiny_msd

SHAPE = (4, 8, 8)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run ``autolung <args>`` through the real entry point; only our command module is loaded."""
    monkeypatch.setattr(app_module, "_register_commands",
                        lambda: importlib.import_module("autolung_cli.commands.data"))

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["autolung", *args])
        try:
            app_module.main()
            code = 0
        except SystemExit as exc:  # typer's standalone mode exits even on success
            code = 0 if exc.code is None else exc.code
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.fixture
def msd(tmp_path: Path) -> Path:
    return write_tiny_msd(tmp_path / "Tiny", num_cases=2, shape=SHAPE).resolve()


def _verify_fails_with(run_cli, folder: Path, path: Path, fragment: str) -> str:
    code, output = run_cli("verify", "-d", str(folder))
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.startswith(f"{path}:") and fragment in line]
    assert lines, f"no line naming {path} with {fragment!r} in:\n{output}"
    return output


def _edit_json(folder: Path, **changes) -> None:
    payload = json.loads((folder / "dataset.json").read_text())
    payload.update(changes)
    (folder / "dataset.json").write_text(json.dumps(payload))


def _rewrite(path: Path, array: np.ndarray, like: Path | None = None, **geometry) -> None:
    """Write ``array`` to ``path`` with the geometry of ``like`` (default: the file itself), then overrides."""
    reference = sitk.ReadImage(str(like or path))
    image = sitk.GetImageFromArray(array)
    if array.shape == sitk.GetArrayViewFromImage(reference).shape:
        image.CopyInformation(reference)
    for key, value in geometry.items():
        getattr(image, f"Set{key.capitalize()}")(value)
    sitk.WriteImage(image, str(path))


def test_clean_dataset_exits_0(run_cli, msd: Path) -> None:
    code, output = run_cli("verify", "-d", str(msd))
    assert code == 0, output
    assert "ok, 2 cases" in output


def test_dataset_name_under_root(run_cli, data_root, tiny_msd: Path) -> None:
    code, output = run_cli("verify", "-d", "Tiny_CT", "--root", str(data_root.root))
    assert code == 0 and "ok, 4 cases" in output


def test_missing_image(run_cli, msd: Path) -> None:
    (msd / "imagesTr" / "case_001.nii.gz").unlink()
    _verify_fails_with(run_cli, msd, msd / "imagesTr" / "case_001.nii.gz", "missing image file")


def test_missing_label(run_cli, msd: Path) -> None:
    (msd / "labelsTr" / "case_000.nii.gz").unlink()
    _verify_fails_with(run_cli, msd, msd / "labelsTr" / "case_000.nii.gz", "missing label file")


@pytest.mark.parametrize("content", [b"", b"garbage" * 50])
def test_unreadable_image(run_cli, msd: Path, content: bytes) -> None:
    (msd / "imagesTr" / "case_000.nii.gz").write_bytes(content)
    _verify_fails_with(run_cli, msd, msd / "imagesTr" / "case_000.nii.gz", "cannot read image")


def test_truncated_label(run_cli, msd: Path) -> None:
    label = msd / "labelsTr" / "case_001.nii.gz"
    label.write_bytes(label.read_bytes()[:-40])
    _verify_fails_with(run_cli, msd, label, "cannot read image")


def test_duplicate_case_ids(run_cli, msd: Path) -> None:
    training = json.loads((msd / "dataset.json").read_text())["training"]
    _edit_json(msd, training=training + [training[0]])
    _verify_fails_with(run_cli, msd, msd / "dataset.json", "duplicate case id 'case_000'")


def test_path_escaping_the_dataset_folder(run_cli, msd: Path) -> None:
    training = json.loads((msd / "dataset.json").read_text())["training"]
    _edit_json(msd, training=training + [{"image": "../../etc/x.nii.gz", "label": "./labelsTr/x.nii.gz"}])
    _verify_fails_with(run_cli, msd, msd / "dataset.json", "escapes the folder")


def test_image_and_label_shapes_differ(run_cli, msd: Path) -> None:
    label = msd / "labelsTr" / "case_000.nii.gz"
    _rewrite(label, np.zeros((4, 8, 7), np.uint8))
    _verify_fails_with(run_cli, msd, label, "shape (4, 8, 7) differs from image shape (4, 8, 8)")


@pytest.mark.parametrize("key, value, fragment", [
    ("spacing", (0.7, 0.7, 3.0), "spacing"),
    ("origin", (0.0, 0.0, 0.0), "origin"),
    ("direction", (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0), "direction"),
])
def test_label_geometry_differs(run_cli, msd: Path, key: str, value: tuple, fragment: str) -> None:
    label = msd / "labelsTr" / "case_001.nii.gz"
    _rewrite(label, sitk.GetArrayFromImage(sitk.ReadImage(str(label))), **{key: value})
    _verify_fails_with(run_cli, msd, label, f"label {fragment}")


def test_undeclared_label_values(run_cli, msd: Path) -> None:
    label = msd / "labelsTr" / "case_000.nii.gz"
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
    values[0, 0, 0] = 5
    _rewrite(label, values)
    _verify_fails_with(run_cli, msd, label, "label values [5] are not declared")


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd"])
def test_nan_and_inf_intensities(run_cli, msd: Path, ending: str) -> None:
    old = msd / "imagesTr" / "case_001.nii.gz"
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(old))).astype(np.float32)
    values[0, 0, :3] = [np.nan, np.inf, -np.inf]
    image = msd / "imagesTr" / f"case_001{ending}"
    _rewrite(image, values, like=old)
    training = json.loads((msd / "dataset.json").read_text())["training"]
    training[1]["image"] = f"./imagesTr/case_001{ending}"
    _edit_json(msd, training=training)
    _verify_fails_with(run_cli, msd, image, "3 NaN/Inf voxel(s)")


def test_constant_image(run_cli, msd: Path) -> None:
    image = msd / "imagesTr" / "case_000.nii.gz"
    _rewrite(image, np.full(SHAPE, -1000, np.int16))
    _verify_fails_with(run_cli, msd, image, "constant")


def test_degenerate_image(run_cli, msd: Path) -> None:
    image, label = msd / "imagesTr" / "case_000.nii.gz", msd / "labelsTr" / "case_000.nii.gz"
    _rewrite(image, np.arange(4, dtype=np.int16).reshape(4, 1, 1))
    _rewrite(label, np.zeros((4, 1, 1), np.uint8))
    _verify_fails_with(run_cli, msd, image, "1 voxel along an in-plane axis")


def test_wrong_number_of_channels(run_cli, msd: Path) -> None:
    _edit_json(msd, modality={"0": "CT", "1": "PET"})
    _verify_fails_with(run_cli, msd, msd / "imagesTr" / "case_000.nii.gz", "1 channel(s) but dataset.json declares 2")


def test_mixed_2d_and_3d_cases(run_cli, tmp_path: Path) -> None:
    folder = (tmp_path / "Mixed").resolve()
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for case, shape in (("flat", (8, 8)), ("deep", (3, 8, 8))):
        sitk.WriteImage(sitk.GetImageFromArray(rng.normal(size=shape).astype(np.float32)),
                        str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros(shape, np.uint8)), str(folder / "labelsTr" / f"{case}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "lung": 1}, "file_ending": ".nii.gz"}))
    _verify_fails_with(run_cli, folder, folder / "dataset.json", "mixes 2D and 3D cases")


def test_nnunet_stray_and_misnamed_files(run_cli, tmp_path: Path) -> None:
    folder = (tmp_path / "Flat").resolve()
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (8, 8)).astype(np.uint8)
    skimage.io.imsave(str(folder / "imagesTr" / "a_0000.png"), pixels, check_contrast=False)
    skimage.io.imsave(str(folder / "imagesTr" / "b.png"), pixels, check_contrast=False)
    for name in ("a.png", "orphan.png"):
        skimage.io.imsave(str(folder / "labelsTr" / name), np.zeros((8, 8), np.uint8), check_contrast=False)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "lung": 1}, "file_ending": ".png",
        "numTraining": 2}))
    output = _verify_fails_with(run_cli, folder, folder / "imagesTr" / "b.png", "must end in _<channel:04d>.png")
    assert f"{folder / 'labelsTr' / 'orphan.png'}: label file has no matching image" in output
    assert f"{folder / 'dataset.json'}: numTraining is 2 but 1 cases were found" in output


def test_every_problem_is_reported_and_nothing_is_written(run_cli, msd: Path) -> None:
    (msd / "labelsTr" / "case_000.nii.gz").unlink()
    (msd / "imagesTr" / "case_001.nii.gz").write_bytes(b"")
    before = {p: p.stat().st_mtime_ns for p in msd.rglob("*")}
    code, output = run_cli("verify", "-d", str(msd))
    assert code == 1
    assert f"{msd / 'labelsTr' / 'case_000.nii.gz'}: missing label file" in output
    assert f"{msd / 'imagesTr' / 'case_001.nii.gz'}: cannot read image" in output
    assert "2 problem(s) found in 2 case(s)" in output
    assert {p: p.stat().st_mtime_ns for p in msd.rglob("*")} == before


def test_invalid_dataset_json_is_one_problem(run_cli, msd: Path) -> None:
    (msd / "dataset.json").write_text("{broken")
    _verify_fails_with(run_cli, msd, msd / "dataset.json", "invalid JSON")


def test_worker_processes_find_the_same_problems(msd: Path) -> None:
    (msd / "labelsTr" / "case_001.nii.gz").unlink()
    assert verify_dataset(msd, num_processes=2) == verify_dataset(msd, num_processes=1) != []


def test_console_entry_point_end_to_end(msd: Path) -> None:
    (msd / "imagesTr" / "case_000.nii.gz").write_bytes(b"junk")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "autolung_cli", "verify", "-d", str(msd)], cwd=REPO,
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"{msd / 'imagesTr' / 'case_000.nii.gz'}: cannot read image" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {msd}: 1 problem(s)")
