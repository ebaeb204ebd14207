"""autolung's translated network against real dynamic-network-architectures outputs (fixture from make_dna_fixture.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autolung.network import build_network
from autolung.nnunet.translate import translate_plans
from autolung.nnunet.weights import convert_state_dict
from tests.nnunet.nnunet_layout import dataset_json, plans_json

FIXTURE = Path(__file__).resolve().parent / "data" / "dna_reference.pt"


@pytest.mark.parametrize("name", ["plain_2d", "resenc_3d"])
def test_same_output_as_nnunets_own_network(name: str) -> None:
    entry = torch.load(FIXTURE, weights_only=True)[name]
    dim = entry["input"].ndim - 2
    configuration = "2d" if dim == 2 else "3d_fullres"
    patch = list(entry["input"].shape[2:])
    plans = plans_json(configuration, dim, entry["residual"], patch, [1.0] * dim, kwargs=entry["arch_kwargs"])
    translated = translate_plans(plans, dataset_json(), configuration, None)
    network = build_network(translated.plans.configuration(configuration).architecture, 1, 3,
                            deep_supervision=False)
    network.load_state_dict(convert_state_dict(entry["state_dict"]), strict=True)
    network.eval()
    with torch.no_grad():
        output = network(entry["input"])
    assert torch.allclose(output, entry["output"], atol=1e-5), float((output - entry["output"]).abs().max())
