"""SIGKILL at seeded random moments (and mid-checkpoint-write), rerun, compare with an uninterrupted run.

Each command runs as a real subprocess (its own session, so the kill reaches its workers too) with
a timeout. The kill delays are drawn from a seeded RNG as fractions of the uninterrupted run's
duration, so each repetition stops at a different, reproducible point. After the kills the same
command runs to the end, and its result must equal the uninterrupted run's: arrays bit for bit,
masks voxel for voxel, weights bit for bit, installed files byte for byte. Nothing may be lost:
no missing outputs, no ``.partial-`` leftovers, no stale lock, no half-written file.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from autolung.paths import DataRoot
from conftest import make_case, write_tiny_msd
from inference.fake_model import tiny_plans, write_fake_model

from .helpers import REPO, cli_env

TESTS = REPO / "tests"
KILLS = 2          # random kills per command (each followed by the rerun)
TIMEOUT = 240


def _run(command: list[str], kill_after: float | None = None) -> tuple[bool, subprocess.CompletedProcess | None, float]:
    """Run ``command``; SIGKILL its whole session after ``kill_after`` seconds. Returns (killed, result, seconds)."""
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                               cwd=REPO, start_new_session=True)
    try:
        out, err = process.communicate(timeout=kill_after if kill_after is not None else TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        if kill_after is None:
            pytest.fail(f"{command} did not finish in {TIMEOUT} s")
        return True, subprocess.CompletedProcess(command, process.returncode, out, err), time.monotonic() - start
    return False, subprocess.CompletedProcess(command, process.returncode, out, err), time.monotonic() - start


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autolung_cli", *args]


def _kill_then_finish(command: list[str], duration: float, seed: int, kills: int = KILLS) -> dict:
    """Kill ``command`` at ``kills`` seeded random moments, then run it to the end. Returns counts."""
    rng = random.Random(seed)
    counts = {"killed": 0, "finished_early": 0}
    for _ in range(kills):
        killed, result, _ = _run(command, kill_after=rng.uniform(0.15, 0.95) * duration)
        if killed:
            counts["killed"] += 1
        else:  # it outran the kill: fine, but it must have succeeded
            assert result.returncode == 0, result.stderr
            counts["finished_early"] += 1
    _, result, _ = _run(command)
    assert result.returncode == 0, result.stderr
    counts["final_stderr"] = result.stderr
    return counts


def _assert_nothing_left_over(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.startswith((".partial-", ".autolung-install-"))
                 or p.name == ".autolung.lock"]
    assert not leftovers, leftovers


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- preprocessing

def test_plan_and_preprocess_killed_at_random_moments_equals_uninterrupted(tmp_path):
    roots = [DataRoot(tmp_path / name) for name in ("straight", "killed")]
    for root in roots:
        write_tiny_msd(root.raw / "Tiny_CT", num_cases=6, shape=(12, 32, 32))
    def command(root: DataRoot) -> list[str]:
        return _cli("plan_and_preprocess", "-d", "Tiny_CT", "--root", str(root.root), "-np", "2",
                    "--planner", "default", "-c", "3d_fullres", "--no-progress")
    killed, result, duration = _run(command(roots[0]))
    assert not killed and result.returncode == 0, result.stderr
    counts = _kill_then_finish(command(roots[1]), duration, seed=11)
    assert counts["killed"] >= 1

    straight, resumed = (root.preprocessed / "Tiny_CT" for root in roots)
    assert _tree(straight) == _tree(resumed)
    for name in _tree(straight):
        a, b = straight / name, resumed / name
        if name.endswith(".npy"):
            assert np.array_equal(np.load(a), np.load(b)), name
        elif name.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name
    _assert_nothing_left_over(roots[1].root)


# ----------------------------------------------------------------------------- prediction

def test_predict_killed_at_random_moments_equals_uninterrupted(tmp_path):
    model_root = tmp_path / "model_root"
    write_fake_model(model_root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0, 1), bias=0.4)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(6):
        sitk.WriteImage(make_case((8, 24, 24), seed=i)[0], str(inputs / f"c{i}_0000.nii.gz"))
    command = lambda output: _cli("predict", "-i", str(inputs), "-o", str(output), "-d", "Tiny_CT",  # noqa: E731
                                  "-c", "3d_fullres", "--no-progress", "--root", str(model_root))
    killed, result, duration = _run(command(tmp_path / "straight"))
    assert not killed and result.returncode == 0, result.stderr
    counts = _kill_then_finish(command(tmp_path / "killed"), duration, seed=12)
    assert counts["killed"] >= 1
    masks = [f"c{i}.nii.gz" for i in range(6)]
    assert _tree(tmp_path / "straight") == _tree(tmp_path / "killed") == ["autolung_predictions.json", *masks]
    records = [json.loads((tmp_path / run / "autolung_predictions.json").read_text()) for run in ("straight", "killed")]
    assert records[0]["cases"] == records[1]["cases"] == [f"c{i}" for i in range(6)]
    for name in masks:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "straight" / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "killed" / name)))
        assert np.array_equal(a, b), name
    _assert_nothing_left_over(tmp_path / "killed")


# ----------------------------------------------------------------------------- training

TRAIN_SCRIPT = textwrap.dedent("""
    # The test's own wrapper: argv[3] > 0 kills this process in the middle of the Nth torch.save.
    import logging, os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch
    kill_at = int(sys.argv[3])
    original, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        calls[0] += 1
        original(obj, f, *args, **kwargs)
        if calls[0] == kill_at:
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])   # half a checkpoint on disk, then die
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save
    from training.helpers import DATASET, fast_options
    from autolung.paths import DataRoot
    from autolung.training.run import train_fold
    train_fold(DataRoot(Path(sys.argv[1])), DATASET, "3d_fullres", 0,
               fast_options(epochs=5, iters_per_epoch=2, deterministic=True, plot_every=100, num_threads=1,
                            resume=sys.argv[2] == "1"))
""")


def _weights(root: DataRoot) -> dict:
    from training.helpers import DATASET

    folder = root.training_output(DATASET, "3d_fullres") / "fold_0"
    return torch.load(folder / "checkpoint_final.pt", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    assert a["network_weights"].keys() == b["network_weights"].keys()
    for key, value in a["network_weights"].items():
        assert torch.equal(value, b["network_weights"][key]), key


@pytest.mark.slow
def test_training_killed_at_random_moments_and_mid_checkpoint_write_resumes_exactly(tmp_path):
    from training.helpers import DATASET, write_tiny_preprocessed

    script = tmp_path / "train_wrapper.py"
    script.write_text(TRAIN_SCRIPT.format(tests=str(TESTS)))
    roots = {name: DataRoot(tmp_path / name) for name in ("straight", "random", "mid_save")}
    for root in roots.values():
        write_tiny_preprocessed(root, num_cases=4)
    command = lambda root, kill_at=0: [sys.executable, str(script), str(root.root), "1", str(kill_at)]  # noqa: E731

    killed, result, duration = _run(command(roots["straight"]))
    assert not killed and result.returncode == 0, result.stderr
    reference = _weights(roots["straight"])

    counts = _kill_then_finish(command(roots["random"]), duration, seed=13)
    assert counts["killed"] >= 1
    _assert_same_weights(reference, _weights(roots["random"]))
    _assert_nothing_left_over(roots["random"].root)

    # Saves per run: latest/best after each epoch; kill inside the 2nd and then the 5th save.
    fold = roots["mid_save"].training_output(DATASET, "3d_fullres") / "fold_0"
    for kill_at in (2, 5):
        killed, result, _ = _run(command(roots["mid_save"], kill_at))
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert list(fold.glob(".partial-*")), "the kill should leave a half-written temporary file"
        for name in ("checkpoint_latest.pt", "checkpoint_best.pt"):   # the real names are never half-written
            if (fold / name).exists():
                torch.load(fold / name, weights_only=True)
    killed, result, _ = _run(command(roots["mid_save"]))
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stderr and "checkpoint_latest.pt at epoch" in result.stderr
    _assert_same_weights(reference, _weights(roots["mid_save"]))
    _assert_nothing_left_over(roots["mid_save"].root)


# ----------------------------------------------------------------------------- model install

def test_install_model_killed_at_random_moments_equals_uninterrupted(tmp_path):
    from autolung.inference.bundle import export_model

    source = tmp_path / "source" / "Tiny_CT"
    for name in ("3d_fullres__default", "2d__default"):
        plans = tiny_plans() if name.startswith("3d") else tiny_plans(dim=2)
        write_fake_model(source / name, plans, folds=(0, 1, 2), bias=0.4)
    bundle = tmp_path / "model.zip"
    export_model(source, ["3d_fullres__default", "2d__default"], bundle)
    command = lambda root: _cli("install_model", str(bundle), "--root", str(root))  # noqa: E731
    killed, result, duration = _run(command(tmp_path / "straight"))
    assert not killed and result.returncode == 0, result.stderr
    counts = _kill_then_finish(command(tmp_path / "killed"), duration, seed=14, kills=3)
    assert counts["killed"] >= 1
    straight, installed = tmp_path / "straight" / "results", tmp_path / "killed" / "results"
    assert _tree(straight) == _tree(installed)
    for name in _tree(straight):
        assert (straight / name).read_bytes() == (installed / name).read_bytes(), name
    _assert_nothing_left_over(installed)


INSTALL_SCRIPT = textwrap.dedent("""
    # The test's own wrapper: SIGKILL right after the first configuration folder is renamed into
    # place (one configuration installed, the other and inference_choice.json not yet).
    import os, pathlib, signal, sys
    original = pathlib.Path.rename

    def rename(self, target):
        result = original(self, target)
        if ".autolung-install-" in str(self):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    pathlib.Path.rename = rename
    from autolung_cli.app import main
    sys.argv = ["autolung", *sys.argv[1:]]
    main()
""")


def test_install_model_killed_between_configurations_is_finished_by_the_same_command(tmp_path):
    from autolung.inference.bundle import export_model

    source = tmp_path / "source" / "Tiny_CT"
    for name in ("3d_fullres__default", "2d__default"):
        write_fake_model(source / name, tiny_plans() if name.startswith("3d") else tiny_plans(dim=2), folds=(0,))
    bundle = tmp_path / "model.zip"
    export_model(source, ["3d_fullres__default", "2d__default"], bundle)
    script = tmp_path / "install_wrapper.py"
    script.write_text(INSTALL_SCRIPT)
    _, result, _ = _run([sys.executable, str(script), "install_model", str(bundle), "--root", str(tmp_path / "a")])
    assert result.returncode == -signal.SIGKILL
    installed = tmp_path / "a" / "results"
    assert len([p for p in (installed / "Tiny_CT").iterdir()]) == 1          # half installed
    assert [p for p in installed.iterdir() if p.name.startswith(".autolung-install-")]   # staging left behind
    _, result, _ = _run(_cli("install_model", str(bundle), "--root", str(tmp_path / "a")))   # the same command
    assert result.returncode == 0, result.stderr
    _, result, _ = _run(_cli("install_model", str(bundle), "--root", str(tmp_path / "b")))   # uninterrupted
    assert result.returncode == 0, result.stderr
    straight = tmp_path / "b" / "results"
    assert _tree(straight) == _tree(installed)
    for name in _tree(straight):
        assert (straight / name).read_bytes() == (installed / name).read_bytes(), name
    _assert_nothing_left_over(installed)
