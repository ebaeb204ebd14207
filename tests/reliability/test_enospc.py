"""Disk full (ENOSPC) and read-only output folders: one clear line, nothing corrupted, a rerun finishes.

A full disk is simulated by making the writer put half its bytes into the temporary file and
then fail the way the real library does on ENOSPC (``OSError`` from numpy, ``RuntimeError`` from
SimpleITK and torch). The read-only folder is real: ``/sys`` refuses new files even to root.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import autolung_cli.app as app_module
from autolung.errors import WriteFailedError
from autolung.utils.atomic import save_npy_atomic, write_json_atomic
from conftest import make_case, write_tiny_msd
from inference.fake_model import tiny_plans, write_fake_model

from .helpers import assert_one_line_error, run_cli_inprocess, snapshot


@pytest.fixture(autouse=True)
def _all_commands():
    app_module._register_commands()


@pytest.fixture
def cli(monkeypatch, capsys):
    return lambda *args: run_cli_inprocess(monkeypatch, capsys, *args)


def _no_partials(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.startswith(".partial-")]


def test_atomic_helpers_turn_enospc_into_a_clear_error_and_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.npy"
    save_npy_atomic(target, np.arange(10))
    real_save = np.save

    def full_disk(handle, array, **kwargs):
        handle.write(b"\x93NUMPY half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(WriteFailedError, match="no space left on device") as caught:
        save_npy_atomic(target, np.zeros(10))
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert str(target) in str(caught.value)
    monkeypatch.setattr(np, "save", real_save)
    assert np.array_equal(np.load(target), np.arange(10))
    _no_partials(tmp_path)
    # other OSErrors inside the block are not relabelled as write failures
    with pytest.raises(FileNotFoundError):
        with __import__("autolung.utils.atomic", fromlist=["atomic_path"]).atomic_path(tmp_path / "b.json"):
            open(tmp_path / "missing-input")
    write_json_atomic(tmp_path / "c.json", {"ok": 1})


def test_disk_full_during_preprocessing_then_rerun(data_root, cli, monkeypatch):
    write_tiny_msd(data_root.raw / "Tiny_CT", num_cases=3, shape=(6, 16, 16))
    args = ("plan_and_preprocess", "-d", "Tiny_CT", "--planner", "default", "--root", str(data_root.root), "-np", "1",
            "-c", "3d_fullres", "--no-progress")
    real_save, calls = np.save, [0]

    def fills_up(handle, array, **kwargs):
        calls[0] += 1
        if calls[0] == 3:   # the second case's image array
            handle.write(b"\x93NUMPY" + b"\0" * 64)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(handle, array, **kwargs)

    monkeypatch.setattr(np, "save", fills_up)
    code, out, err = cli(*args)
    folder = data_root.preprocessed / "Tiny_CT" / "3d_fullres"
    line = assert_one_line_error(code, out, err, folder, "no space left on device")
    assert ".npy" in line
    _no_partials(data_root.root)
    for array in folder.glob("*.npy"):   # whatever was written is complete
        np.load(array)
    monkeypatch.setattr(np, "save", real_save)   # space freed: the same command finishes
    code, out, err = cli(*args)
    assert code == 0, err
    assert len(list(folder.glob("*_seg.npy"))) == 3
    _no_partials(data_root.root)


def test_disk_full_writing_a_mask(tmp_path, cli, monkeypatch):
    root = tmp_path / "root"
    write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0,), bias=0.4)
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(2):
        sitk.WriteImage(make_case((6, 16, 16), seed=i)[0], str(inputs / f"c{i}.nii.gz"))
    real_write, calls = sitk.WriteImage, [0]

    def fills_up(image, path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            Path(path).write_bytes(b"\x1f\x8b half a mask")
            raise RuntimeError(f"Exception thrown in SimpleITK WriteImage:\nitk::ERROR: NiftiImageIO(0x1): "
                               f"Could not write {path}: No space left on device")
        return real_write(image, path, *args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", fills_up)
    predict = ("predict", "-i", str(inputs), "-o", str(output), "-d", "Tiny_CT", "-c", "3d_fullres", "-f", "0",
               "--disable-tta", "--no-progress", "--root", str(root))
    code, out, err = cli(*predict)
    assert_one_line_error(code, out, err, output / "c1.nii.gz", "no space left on device")
    assert sorted(p.name for p in output.glob("*.nii.gz")) == ["c0.nii.gz"]   # c1 absent, not half-written
    monkeypatch.setattr(sitk, "WriteImage", real_write)
    code, out, err = cli(*predict)
    assert code == 0, err
    assert sorted(p.name for p in output.glob("*.nii.gz")) == ["c0.nii.gz", "c1.nii.gz"]


def test_disk_full_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from autolung.paths import DataRoot
    from autolung.training.run import train_fold
    from training.helpers import DATASET, fast_options, write_tiny_preprocessed

    root = DataRoot(tmp_path / "root")
    write_tiny_preprocessed(root, num_cases=4)
    real_save, calls = torch.save, [0]

    def fills_up(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:   # epoch 2's checkpoint_latest.pt
            Path(f).write_bytes(b"PK half a checkpoint")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                               "file data/3: file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_up)
    options = dict(epochs=3, iters_per_epoch=1, deterministic=True, plot_every=100, num_threads=1)
    with pytest.raises(WriteFailedError, match="is the disk full") as caught:
        train_fold(root, DATASET, "3d_fullres", 0, fast_options(**options))
    fold = root.training_output(DATASET, "3d_fullres") / "fold_0"
    assert caught.value.path is not None and caught.value.path.parent == fold
    assert torch.load(fold / "checkpoint_latest.pt", weights_only=True)["epoch"] == 1   # the previous one
    _no_partials(fold)
    monkeypatch.setattr(torch, "save", real_save)
    train_fold(root, DATASET, "3d_fullres", 0, fast_options(**options, resume=True))
    assert torch.load(fold / "checkpoint_final.pt", weights_only=True)["epoch"] == 3


def _read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys/kernel")   # root ignores permission bits; sysfs refuses new files anyway
    probe = folder / ".autolung-probe"
    try:
        probe.open("w").close()
    except OSError:
        return folder
    probe.unlink()
    pytest.skip("no read-only folder available to this user")


def test_read_only_output_folder_is_a_clear_error(tmp_path, cli):
    root = tmp_path / "root"
    write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0,))
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(make_case((6, 16, 16), seed=0)[0], str(inputs / "c0.nii.gz"))
    read_only = _read_only_folder(tmp_path)
    before = snapshot(inputs)
    for output in (read_only, read_only / "masks"):   # existing read-only folder; new folder inside one
        code, out, err = cli("predict", "-i", str(inputs), "-o", str(output), "-d", "Tiny_CT", "-c", "3d_fullres",
                             "-f", "0", "--disable-tta", "--no-progress", "--root", str(root))
        assert_one_line_error(code, out, err, output)
        assert not output.exists() or output == read_only
    assert snapshot(inputs) == before
