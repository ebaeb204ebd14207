"""An exponential moving average of the network's weights (Polyak averaging), for short schedules.

The averaged weights are a second model, written as their own checkpoint at the end of training
(``checkpoint_weight_ema.pt``, see :mod:`autolung.results`) and predicted from with
``checkpoint="weight_ema"``; the trained weights are untouched. The decay starts low and rises
to its target (``min(decay, (1 + n) / (10 + n))`` after n updates), so the first weights of a run
of a few thousand steps do not dominate its average.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autolung.errors import AutolungError


class WeightAverage:
    """The running average of a module's floating-point weights; other buffers are copied.

    Args:
        module: the network being trained (its ``state_dict`` keys and shapes are the average's).
        decay: the target decay, in (0, 1): the weight of the old average at each update.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise AutolungError(f"`weight_ema_decay` must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.weights = {name: value.detach().clone() for name, value in module.state_dict().items()}

    def current_decay(self) -> float:
        """The decay of the next update (the warm-up rule of the module docstring)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average towards ``module``'s weights after an optimiser step.

        Returns:
            None.
        """
        keep = self.current_decay()
        for name, value in module.state_dict().items():
            average = self.weights[name]
            if average.is_floating_point():
                average.lerp_(value.detach().to(average.dtype), 1.0 - keep)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The average for a checkpoint (weights-only loadable: tensors and numbers).

        Returns:
            ``{"decay", "updates", "weights"}`` with the weights on the CPU.
        """
        return {"decay": self.decay, "updates": self.updates,
                "weights": {name: value.detach().cpu() for name, value in self.weights.items()}}

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run).

        Raises:
            AutolungError: the saved average belongs to another network.
        """
        saved = payload["weights"]
        if saved.keys() != self.weights.keys():
            raise AutolungError("the checkpoint's weight average belongs to another network")
        for name, value in saved.items():
            self.weights[name].copy_(value)
        self.updates = int(payload["updates"])
