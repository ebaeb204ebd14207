"""The moving average of the weights: its decay warm-up, its arithmetic and its checkpoint round trip."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autolung.errors import AutolungError
from autolung.training.weight_average import WeightAverage


def _linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_decay_rises_to_its_target() -> None:
    average = WeightAverage(_linear(0.0), decay=0.99)
    assert average.current_decay() == pytest.approx(0.1)
    average.updates = 10
    assert average.current_decay() == pytest.approx(11 / 20)
    average.updates = 10_000
    assert average.current_decay() == 0.99


def test_update_moves_the_average_towards_the_weights() -> None:
    average = WeightAverage(_linear(0.0), decay=0.99)
    average.update(_linear(1.0))  # keeps 0.1 of the old average
    assert torch.allclose(average.weights["weight"], torch.full((1, 2), 0.9))
    average.update(_linear(1.0))  # keeps 2/11
    assert torch.allclose(average.weights["bias"], torch.full((1,), 1 - 0.1 * 2 / 11))
    assert average.updates == 2


def test_state_round_trip_and_foreign_network() -> None:
    average = WeightAverage(_linear(0.0), decay=0.9)
    average.update(_linear(2.0))
    restored = WeightAverage(_linear(5.0), decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 1 and torch.equal(restored.weights["weight"], average.weights["weight"])
    with pytest.raises(AutolungError, match="another network"):
        WeightAverage(nn.Linear(3, 1, bias=False), 0.9).load_state_dict(average.state_dict())
    with pytest.raises(AutolungError, match="weight_ema_decay"):
        WeightAverage(_linear(0.0), decay=1.0)
