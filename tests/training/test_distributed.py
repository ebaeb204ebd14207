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
