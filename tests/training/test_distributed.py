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


@pytest.mark.slow
def test_two_nodes_through_torchrun_rendezvous_equal_one_node_with_two_processes(tmp_path):
    """Multi-node training: two torchrun launchers of one process each (--nnodes 2, c10d rendezvous
    on localhost, gloo) give the same weights as one launcher of two processes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from autolung.training.distributed import free_port

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    train = ["-m", "autolung_cli", "train", "-d", DATASET, "-c", "3d_fullres", "-f", "0", "--epochs", "2",
             "--iters-per-epoch", "2", "--val-iters", "1", "--device", "cpu", "--num-workers", "0",
             "--no-final-validation", "--deterministic"]
    roots = {name: DataRoot(tmp_path / name) for name in ("one_node", "two_nodes")}
    for root in roots.values():
        write_tiny_preprocessed(root, num_cases=4)

    single = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *train, "--root", str(roots["one_node"].root)],
                            capture_output=True, text=True, timeout=300, env=env, cwd=repo)
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]

    endpoint = f"127.0.0.1:{free_port()}"
    launchers = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                                   "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
                                   "--rdzv_id", "autolung-test", *train, "--root", str(roots["two_nodes"].root)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=repo)
                 for _ in range(2)]
    outputs = [launcher.communicate(timeout=300)[0] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], [o[-3000:] for o in outputs]
    assert any("DDP replicas identical across 2 ranks" in output for output in outputs)

    weights = [torch.load(root.training_output(DATASET, "3d_fullres") / "fold_0" / "checkpoint_final.pt",
                          weights_only=True)["network_weights"] for root in roots.values()]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
