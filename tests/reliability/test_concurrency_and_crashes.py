"""Two live runs on one output folder, stale locks of killed runs, and worker processes that crash.

Every subprocess has a timeout, so a hang fails the test instead of stalling the suite.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

import autolung_cli.app as app_module
from autolung.utils.locking import LOCK_NAME
from conftest import make_case, write_tiny_msd
from inference.fake_model import tiny_plans, write_fake_model

from .helpers import REPO, assert_one_line_error, cli_env, run_cli_inprocess

TESTS = REPO / "tests"


@pytest.fixture(autouse=True)
def _all_commands():
    app_module._register_commands()


@pytest.fixture
def cli(monkeypatch, capsys):
    return lambda *args: run_cli_inprocess(monkeypatch, capsys, *args)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_live_predicts_share_a_folder_case_by_case_and_a_killed_runs_case_lock_is_taken_over(
        tmp_path, cli, caplog):
    """Locks are per case: a second run into a folder another live run is writing predicts the
    other cases (it leaves the locked one alone); a killed run's case lock is taken over."""
    from autolung.inference.predictor import CASE_LOCK_PREFIX

    root = tmp_path / "root"
    write_fake_model(root / "results" / "Tiny_CT" / "3d_fullres__default", tiny_plans(), folds=(0, 1), bias=0.4)
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(8):
        sitk.WriteImage(make_case((8, 24, 24), seed=i)[0], str(inputs / f"c{i}.nii.gz"))
    args = ["predict", "-i", str(inputs), "-o", str(output), "-d", "Tiny_CT", "-c", "3d_fullres", "--no-progress",
            "--root", str(root)]
    first = subprocess.Popen([sys.executable, "-m", "autolung_cli", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True)
    try:
        _wait_for(output / f"{CASE_LOCK_PREFIX}c0.lock", first)
        code, out, err = cli(*args)                       # the second run, while the first lives
        assert code == 0, err
        os.killpg(first.pid, signal.SIGKILL)              # the first run dies without cleaning up
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate(timeout=30)
    stale = sorted(output.glob(f"{CASE_LOCK_PREFIX}*.lock"))  # the case the first run was writing, if any
    code, out, err = cli(*args)
    assert code == 0, err
    if stale:
        assert "stale lock" in caplog.text and str(first.pid) in caplog.text
    assert sorted(p.name for p in output.glob("*.nii.gz")) == [f"c{i}.nii.gz" for i in range(8)]
    assert not list(output.glob(".partial-*")) and not list(output.glob(f"{CASE_LOCK_PREFIX}*"))


TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from training.helpers import DATASET, fast_options
    from autolung.paths import DataRoot
    from autolung.training.run import train_fold
    train_fold(DataRoot(Path(sys.argv[1])), DATASET, "3d_fullres", 0,
               fast_options(epochs=200, iters_per_epoch=2, plot_every=1000, num_threads=1))
""")


def test_second_training_of_the_same_fold_is_refused(tmp_path, cli):
    from autolung.paths import DataRoot
    from training.helpers import DATASET, write_tiny_preprocessed

    root = DataRoot(tmp_path / "root")
    write_tiny_preprocessed(root, num_cases=4)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT.format(tests=str(TESTS)))
    fold = root.training_output(DATASET, "3d_fullres") / "fold_0"
    first = subprocess.Popen([sys.executable, str(script), str(root.root)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True)
    try:
        _wait_for(fold / LOCK_NAME, first)
        code, out, err = cli("train", "-d", DATASET, "-c", "3d_fullres", "-f", "0", "--root", str(root.root),
                             "--epochs", "1", "--iters-per-epoch", "1", "--device", "cpu", "--num-workers", "0")
        assert_one_line_error(code, out, err, fold, "another autolung run", "training")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)


CRASH_SCRIPT = textwrap.dedent("""
    # The test's own wrapper: one preprocessing worker crashes (argv[1] = "exit": dies without a
    # word, like a segfault or the OOM killer; "raise": an exception).
    import os, sys
    import autolung.preprocessing.run as run
    original, mode = run.preprocess_one_case, sys.argv[1]

    def crashing(spec, case, *args, **kwargs):
        if case.case_id == "case_002":
            if mode == "exit":
                os._exit(9)
            raise ValueError("a bug in the worker")
        return original(spec, case, *args, **kwargs)

    run.preprocess_one_case = crashing
    from autolung_cli.app import main
    sys.argv = ["autolung", *sys.argv[2:]]
    main()
""")


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_crashing_preprocessing_worker_surfaces_and_nothing_hangs(tmp_path, how):
    write_tiny_msd(tmp_path / "root" / "raw" / "Tiny_CT", num_cases=4, shape=(6, 16, 16))
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(script), how, "plan_and_preprocess", "-d", "Tiny_CT", "--root",
                             str(tmp_path / "root"), "--planner", "default", "-np", "2", "-c", "3d_fullres",
                             "--no-progress"],
                            capture_output=True, text=True, timeout=180, env=cli_env(), cwd=REPO)
    assert time.monotonic() - start < 180
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "case_002" in errors[0], result.stderr
    if how == "raise":   # the worker's own traceback is logged, pointing at the failing line
        assert "Traceback" in result.stderr and "a bug in the worker" in result.stderr
    else:
        assert "terminated abruptly" in errors[0] or "died" in errors[0] or "Broken" in errors[0], errors[0]
    folder = tmp_path / "root" / "preprocessed" / "Tiny_CT" / "3d_fullres"
    assert not list(folder.glob(".partial-*")) and not (folder / LOCK_NAME).exists()
