"""Training length and learning-rate schedule.

Progress is a number in [0, 1]: the completed fraction of the epochs, or, with a time budget,
the larger of that and the elapsed fraction of the budget. The learning rate follows nnU-Net's
polynomial decay of progress, so a time-budgeted run decays fully by the end of its budget.
An optional linear warm-up scales it up over the first fraction of training (an ablation lever
for short budgets; off by default, as in nnU-Net).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def poly_lr(initial_lr: float, progress: float, exponent: float = 0.9) -> float:
    """Polynomial decay: ``initial_lr * (1 - progress) ** exponent``.

    Args:
        initial_lr: learning rate at progress 0.
        progress: fraction of training done, clipped to [0, 1].
        exponent: decay exponent.

    Returns:
        The learning rate.
    """
    progress = min(max(progress, 0.0), 1.0)
    return initial_lr * (1.0 - progress) ** exponent


@dataclass
class Schedule:
    """Where training is and when it ends.

    Attributes:
        epochs: total epochs.
        iters_per_epoch: iterations per epoch.
        time_budget_s: optional wall-clock budget of the training loop.
        initial_lr: learning rate at the start.
        exponent: poly decay exponent.
        warmup: fraction of training over which the rate rises linearly to the poly curve
            (0 = none). It follows iterations, not only epochs, so it also works in one epoch.
    """

    epochs: int
    iters_per_epoch: int
    time_budget_s: float | None
    initial_lr: float
    exponent: float = 0.9
    warmup: float = 0.0

    def progress(self, epoch: int, iteration: int, elapsed_s: float) -> float:
        """Fraction of training done at ``iteration`` of ``epoch`` (both 0-based).

        With epochs only, the fraction changes once per epoch (nnU-Net's per-epoch decay), so a
        run is reproducible whatever the machine's speed.

        Returns:
            Progress in [0, 1].
        """
        by_epochs = epoch / self.epochs
        if self.time_budget_s is None:
            return by_epochs
        return max(by_epochs, elapsed_s / self.time_budget_s)

    def learning_rate(self, epoch: int, iteration: int, elapsed_s: float) -> float:
        """The learning rate to use now.

        Returns:
            Learning rate.
        """
        rate = poly_lr(self.initial_lr, self.progress(epoch, iteration, elapsed_s), self.exponent)
        return rate * self.warmup_factor(epoch, iteration, elapsed_s)

    def warmup_factor(self, epoch: int, iteration: int, elapsed_s: float) -> float:
        """The warm-up's multiplier of the poly rate at this point: 1 once ``warmup`` has passed.

        Returns:
            A factor in (0, 1].
        """
        if self.warmup <= 0.0:
            return 1.0
        done = (epoch * self.iters_per_epoch + iteration + 1) / (self.epochs * self.iters_per_epoch)
        if self.time_budget_s is not None:
            done = max(done, elapsed_s / self.time_budget_s)
        return min(1.0, done / self.warmup)

    def out_of_time(self, elapsed_s: float) -> bool:
        """True once the time budget is spent (never without a budget).

        Returns:
            Whether to stop.
        """
        return self.time_budget_s is not None and elapsed_s >= self.time_budget_s


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group.

    Returns:
        None.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_optimizer(parameters: object, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net's optimiser).

    Args:
        parameters: the network's parameters.
        lr: initial learning rate.
        momentum: momentum (0.99).
        weight_decay: L2 weight decay (3e-5).

    Returns:
        The optimiser.
    """
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
