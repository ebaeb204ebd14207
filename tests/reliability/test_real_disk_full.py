"""A real full disk: a small tmpfs mounted in a private user + mount namespace (``unshare``).

``test_enospc.py`` patches the writers; here the kernel itself answers ENOSPC. A driver script
runs inside the namespace, drives the real CLI against a data root on the tmpfs, fills the
filesystem, and reports what it saw as JSON; this test checks the report. Skipped where the
kernel or container forbids unprivileged namespaces.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO, cli_env

DRIVER = r'''
import json, os, subprocess, sys
from pathlib import Path

sys.path[:0] = [sys.argv[3], sys.argv[3] + "/tests"]
mount, report_path = Path(sys.argv[1]), Path(sys.argv[2])
import torch
from autolung.paths import DataRoot
from training.helpers import write_tiny_preprocessed
from inference.fake_model import tiny_plans, write_fake_model
from conftest import make_case
import SimpleITK as sitk

root = DataRoot(mount / "root")
write_tiny_preprocessed(root, num_cases=4)
model = write_fake_model(mount / "model", tiny_plans(), folds=(0,), bias=0.3)
images = Path(sys.argv[2]).parent / "images"  # inputs live off the tmpfs
images.mkdir(exist_ok=True)
for i in range(2):
    sitk.WriteImage(make_case((8, 20, 20), seed=i)[0], str(images / f"c{i}_0000.nii.gz"))
fold = root.training_output("Tiny_Train", "3d_fullres") / "fold_0"
report = {}


def cli(*args):
    done = subprocess.run([sys.executable, "-m", "autolung_cli", *args], capture_output=True, text=True)
    return {"code": done.returncode, "stderr": done.stderr}


def fill():
    with open(mount / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            return exc.errno


train = ["train", "-d", "Tiny_Train", "-c", "3d_fullres", "-f", "0", "--root", str(root.root), "--iters-per-epoch", "1",
         "--val-iters", "1", "--device", "cpu", "--num-workers", "0", "--no-final-validation"]
report["train_1"] = cli(*train, "--epochs", "1")
report["fill_errno"] = fill()
predict = ["predict", "-i", str(images), "-o", str(mount / "masks"), "--model", str(model), "--disable-tta",
           "--no-progress"]
report["predict_full"] = cli(*predict)
report["masks_after_full"] = sorted(p.name for p in (mount / "masks").glob("*")) if (mount / "masks").exists() else []
# Free 64 KB: enough for the lock and the small JSON files, not for a checkpoint.
filler = mount / "filler"
os.truncate(filler, filler.stat().st_size - 65536)
report["train_full"] = cli(*train, "--epochs", "2", "--continue")
report["latest_epoch_after_full"] = torch.load(fold / "checkpoint_latest.pt", weights_only=True)["epoch"]
report["partials_after_full"] = [str(p) for p in mount.rglob(".partial-*")]
(mount / "filler").unlink()
report["train_again"] = cli(*train, "--epochs", "2", "--continue")
report["latest_epoch_after_rerun"] = torch.load(fold / "checkpoint_latest.pt", weights_only=True)["epoch"]
report["predict_again"] = cli(*predict)
report["masks_after_rerun"] = sorted(p.name for p in (mount / "masks").glob("*"))
report["partials_after_rerun"] = [str(p) for p in mount.rglob(".partial-*")]
report_path.write_text(json.dumps(report))
'''


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt && true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_work(), reason="unprivileged user+mount namespaces (unshare) not permitted here")
def test_training_and_prediction_on_a_really_full_disk(tmp_path):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    report_path = tmp_path / "report.json"
    command = (f"mount -t tmpfs -o size=8m tmpfs '{mount}' && "
               f"exec '{sys.executable}' '{driver}' '{mount}' '{report_path}' '{REPO}'")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())

    assert report["train_1"]["code"] == 0, report["train_1"]["stderr"]
    assert report["fill_errno"] == 28  # ENOSPC from the kernel, not from a patched writer
    for step in ("predict_full", "train_full"):
        result = report[step]
        errors = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
        assert result["code"] != 0 and "Traceback" not in result["stderr"], result["stderr"]
        assert len(errors) == 1, result["stderr"]
        # Which write meets the full disk first (progress.png, a checkpoint) depends on sizes;
        # each must name its file and say why.
        assert "no space left on device" in errors[0].lower() or "disk full" in errors[0].lower(), errors[0]
        assert str(mount) in errors[0]
    assert "lock file" in report["predict_full"]["stderr"]
    assert report["latest_epoch_after_full"] == 1  # the previous checkpoint survived, loadable
    assert report["partials_after_full"] == [] and report["masks_after_full"] == []
    assert report["train_again"]["code"] == 0, report["train_again"]["stderr"]
    assert report["latest_epoch_after_rerun"] == 2
    assert report["predict_again"]["code"] == 0, report["predict_again"]["stderr"]
    assert report["masks_after_rerun"] == ["autolung_predictions.json", "c0.nii.gz", "c1.nii.gz"]
    assert report["partials_after_rerun"] == []
