from __future__ import annotations

import json

import pytest
import torch

from autolung.paths import DataRoot
from autolung.training.run import train_fold

from .helpers import DATASET, fast_options, write_tiny_preprocessed


@pytest.mark.slow
def test_two_gloo_processes_on_cpu_keep_identical_replicas(tmp_path):
    root = DataRoot(tmp_path)
    write_tiny_preprocessed(root, num_cases=4)
    # Each rank checks at the end that all ranks hold identical parameters (raises otherwise),
    # and the spawn re-raises any rank's failure here.
    folder = train_fold(root, DATASET, "3d_fullres", 0,
                        fast_options(num_gpus=2, epochs=2, iters_per_epoch=2, plot_every=100))
    payload = torch.load(folder / "checkpoint_final.pt", weights_only=True)
    assert payload["epoch"] == 2
    records = [json.loads(line) for line in (folder / "training_log.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["iterations"] == 2 for r in records)
    assert not any(k.startswith("module.") for k in payload["network_weights"])


@pytest.mark.slow
def test_torchrun_launch_of_the_cli_trains_two_identical_replicas(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = DataRoot(tmp_path)
    write_tiny_preprocessed(root, num_cases=4)
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "autolung_cli", "train", "-d", DATASET, "-c", "3d_fullres", "-f", "0", "--root", str(root.root),
               "--epochs", "2", "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
               "--no-final-validation"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=repo)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = root.training_output(DATASET, "3d_fullres") / "fold_0"
    payload = torch.load(folder / "checkpoint_final.pt", weights_only=True)
    assert payload["epoch"] == 2 and not any(k.startswith("module.") for k in payload["network_weights"])
    # The ranks compare parameter digests at the end; a difference fails the run.
    assert "DDP replicas identical across 2 ranks" in done.stdout + done.stderr
