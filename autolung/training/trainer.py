"""The training loop: epochs of SGD steps, validation pseudo-Dice, checkpoints and resume.

Everything a resumed run needs is in :meth:`Trainer.state_dict`: network, optimiser, grad
scaler, epoch, how many batches each stream has delivered (batches are a pure function of their
index, see ``data/batches.py``), elapsed training time, the EMA of the pseudo-Dice, the log
records and the global RNG states. With ``--deterministic`` and in-process data loading a run
resumed after epoch k is bitwise identical to one that never stopped (on CPU).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autolung.output_kind import OutputKind, as_output_kind
from autolung.progress import ProgressReporter, reporter
from autolung.training import checkpoint as ckpt
from autolung.training.data.batches import Batch
from autolung.training.data.targets import downsample_targets
from autolung.training.distributed import (
    DistributedContext,
    all_reduce_mean,
    all_reduce_sum,
    broadcast_flag,
    check_replicas_identical,
)
from autolung.training.logger import TrainingLogger
from autolung.training.options import TrainingOptions
from autolung.training.schedule import Schedule, set_learning_rate
from autolung.training.weight_average import WeightAverage

logger = logging.getLogger(__name__)

# nnU-Net clips the global gradient norm at 12; it tames the occasional exploding step.
GRAD_CLIP_NORM = 12.0


@dataclass
class TrainerState:
    """Counters that, with the weights, define where training is.

    Attributes:
        epoch: completed epochs.
        train_batches: training batches consumed so far (index of the next one).
        val_batches: validation batches consumed so far.
        elapsed_s: training-loop wall-clock seconds accumulated over all sessions.
        ema_pseudo_dice: EMA of the mean validation pseudo-Dice (None before the first epoch).
        best_ema: best EMA seen, for ``checkpoint_best.pt``.
        finished: the schedule is complete (epochs done or budget spent).
    """

    epoch: int = 0
    train_batches: int = 0
    val_batches: int = 0
    elapsed_s: float = 0.0
    ema_pseudo_dice: float | None = None
    best_ema: float | None = None
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainerSetup:
    """What the trainer is built from (assembled by ``run.py``).

    Attributes:
        network: the (possibly DDP-wrapped, possibly compiled) network.
        module: the bare network whose weights are saved.
        loss: deep-supervised loss.
        optimizer: the optimiser.
        schedule: length and learning rate.
        train_stream: function(start index) -> iterator of training batches.
        val_stream: function(start index) -> iterator of validation batches.
        device: training device.
        amp_dtype: autocast dtype or None.
        channels_last: convert inputs to channels-last.
        output_kind: the network's output kind (decides the pseudo-Dice).
        class_names: one name per pseudo-Dice channel.
        folder: fold folder.
        header: checkpoint header fields (plans digest, configuration, fold, metadata).
        context: distributed context.
        options: the run's options.
        has_ignore: targets carry an annotated-voxel channel (the dataset has an ignore label).
    """

    network: nn.Module
    module: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    train_stream: Callable[[int], Iterator[Batch]]
    val_stream: Callable[[int], Iterator[Batch]]
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    output_kind: OutputKind
    class_names: list[str]
    folder: Path
    header: dict[str, Any]
    context: DistributedContext
    options: TrainingOptions
    extra: dict[str, Any] = field(default_factory=dict)
    has_ignore: bool = False


@dataclass
class EpochStats:
    """Accumulators of one epoch."""

    losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    wait_s: float = 0.0
    tp: torch.Tensor | None = None
    fp: torch.Tensor | None = None
    fn: torch.Tensor | None = None

    def add_counts(self, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> None:
        if self.tp is None:
            self.tp, self.fp, self.fn = tp, fp, fn
        else:
            self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn


def pseudo_dice_counts(logits: torch.Tensor, target: torch.Tensor, kind: OutputKind | str,
                       has_ignore: bool = False) -> tuple[torch.Tensor, ...]:
    """True/false positives and false negatives per foreground channel (:meth:`OutputKind.pseudo_dice_counts`).

    Args:
        logits: full-resolution output (B, K, *spatial).
        target: matching target (regions (B, R, ...) or class map (B, 1, ...)).
        kind: the output kind, or its loss name.
        has_ignore: the target's last channel is the annotated-voxel mask; other voxels count nowhere.

    Returns:
        ``(tp, fp, fn)``, float64 tensors of one value per channel.
    """
    return as_output_kind(kind).pseudo_dice_counts(logits, target, has_ignore)


class Trainer:
    """Runs the epochs described by ``setup``.

    Args:
        setup: the assembled parts.
        progress: receives one task per epoch ("epoch <n>", one step per training iteration);
            None reports nothing.
    """

    def __init__(self, setup: TrainerSetup, progress: ProgressReporter | None = None) -> None:
        self.setup = setup
        self.progress = reporter(progress)
        self.state = TrainerState()
        self.log = TrainingLogger(setup.folder, setup.class_names, setup.header.get("plans_digest"))
        use_scaler = setup.amp_dtype == torch.float16 and setup.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self._session_epoch_times: list[float] = []
        decay = setup.options.weight_ema_decay
        self.weight_average = WeightAverage(setup.module, decay) if decay is not None else None

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint payload (weights-only loadable).

        Returns:
            The dict saved to disk.
        """
        s = self.setup
        payload = ckpt.checkpoint_header(s.header["plans_digest"], s.header["configuration"], s.header["fold"],
                                         self.state.epoch)
        payload.update({k: v for k, v in s.header.items() if k not in payload})
        payload.update({
            "network_weights": {k: v.detach().cpu() for k, v in s.module.state_dict().items()},
            "optimizer_state": s.optimizer.state_dict(),
            "grad_scaler_state": self.scaler.state_dict(),
            "trainer_state": self.state.to_dict(),
            "logger_state": self.log.state_dict(),
            "rng_state": ckpt.capture_rng_state(),
            "options": s.options.to_json(),
        })
        if self.weight_average is not None:
            payload["weight_average"] = self.weight_average.state_dict()
        return payload

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Restore from a checkpoint dict.

        Returns:
            None.
        """
        s = self.setup
        s.module.load_state_dict(payload["network_weights"])
        s.optimizer.load_state_dict(payload["optimizer_state"])
        if payload.get("grad_scaler_state"):
            self.scaler.load_state_dict(payload["grad_scaler_state"])
        self.state = TrainerState(**payload["trainer_state"])
        self.log.load_state_dict(payload["logger_state"])
        ckpt.restore_rng_state(payload["rng_state"])
        if self.weight_average is not None and "weight_average" in payload:
            self.weight_average.load_state_dict(payload["weight_average"])

    def save(self, name: str) -> None:
        """Save a checkpoint in the fold folder (main rank only).

        Returns:
            None.
        """
        if self.setup.context.is_main and self.setup.options.checkpointing:
            ckpt.save_checkpoint(self.setup.folder / name, self.state_dict())

    def _save_weight_average(self) -> None:
        """Write the averaged weights as a checkpoint of their own (the final one's header and state)."""
        if self.weight_average is None or not (self.setup.context.is_main and self.setup.options.checkpointing):
            return
        payload = self.state_dict()
        payload["network_weights"] = payload.pop("weight_average")["weights"]
        payload["weight_average_updates"] = self.weight_average.updates
        ckpt.save_checkpoint(self.setup.folder / ckpt.WEIGHT_EMA, payload)

    # --- steps ---------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.setup.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.setup.device.type, dtype=dtype)

    def _to_device(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.setup
        non_blocking = s.device.type == "cuda"
        data = torch.from_numpy(batch.data).to(s.device, non_blocking=non_blocking)
        target = torch.from_numpy(batch.target).to(s.device, non_blocking=non_blocking)
        if s.channels_last:
            data = data.contiguous(memory_format=torch.channels_last_3d if data.ndim == 5 else torch.channels_last)
        return data, target

    def train_step(self, batch: Batch) -> float:
        """One optimiser step on ``batch``.

        Returns:
            The loss value.
        """
        s = self.setup
        data, target = self._to_device(batch)
        s.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = s.network(data)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        targets = downsample_targets(target, [o.shape[2:] for o in outputs])
        loss = s.loss(outputs, targets)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.network.parameters(), GRAD_CLIP_NORM)
        self.scaler.step(s.optimizer)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def validation_step(self, batch: Batch, stats: EpochStats) -> None:
        """Loss and pseudo-Dice counts of one validation batch (full-resolution output only).

        Returns:
            None.
        """
        s = self.setup
        data, target = self._to_device(batch)
        with self._autocast():
            output = s.network(data)
        output = output[0] if isinstance(output, (list, tuple)) else output
        stats.val_losses.append(float(s.loss(output.float(), target)))
        stats.add_counts(*s.output_kind.pseudo_dice_counts(output.float(), target, s.has_ignore))

    # --- epochs --------------------------------------------------------------------------------

    def fit(self) -> TrainerState:
        """Train until the schedule is complete (or the time budget is spent).

        Returns:
            The final state.
        """
        s = self.setup
        if self._nothing_to_do():
            logger.info("nothing to do: %d of %d epochs done", self.state.epoch, s.schedule.epochs)
            self._finish()
            return self.state
        self.state.finished = False
        train_iter = s.train_stream(self.state.train_batches)
        val_iter = s.val_stream(self.state.val_batches)
        try:
            while self.state.epoch < s.schedule.epochs:
                stop = self._run_epoch(train_iter, val_iter)
                if stop:
                    logger.info("time budget of %.0f s spent after epoch %d", s.schedule.time_budget_s,
                                self.state.epoch)
                    break
        finally:
            for stream in (train_iter, val_iter):
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        self._finish()
        return self.state

    def _nothing_to_do(self) -> bool:
        schedule = self.setup.schedule
        spent = self.state.finished and schedule.out_of_time(self.state.elapsed_s)
        return self.state.epoch >= schedule.epochs or spent

    def _finish(self) -> None:
        self.state.finished = True
        check_replicas_identical(self.setup.module, self.setup.context)
        self.save(ckpt.FINAL)
        self.save(ckpt.LATEST)
        self._save_weight_average()
        if self.setup.context.is_main:
            self.log.write_jsonl()
            self.log.plot()

    def _run_epoch(self, train_iter: Iterator[Batch], val_iter: Iterator[Batch]) -> bool:
        s = self.setup
        stats = EpochStats()
        start = time.perf_counter()
        elapsed_at_start = self.state.elapsed_s
        lr = s.schedule.learning_rate(self.state.epoch, 0, elapsed_at_start)
        out_of_time = False
        s.network.train()
        with self._progress(s.options.iters_per_epoch, f"epoch {self.state.epoch}") as advance:
            for iteration in range(s.options.iters_per_epoch):
                elapsed = elapsed_at_start + time.perf_counter() - start
                lr = s.schedule.learning_rate(self.state.epoch, iteration, elapsed)
                set_learning_rate(s.optimizer, lr)
                wait_start = time.perf_counter()
                batch = next(train_iter)
                stats.wait_s += time.perf_counter() - wait_start
                stats.losses.append(self.train_step(batch))
                if self.weight_average is not None:
                    self.weight_average.update(s.module)
                self.state.train_batches += 1
                advance()
                elapsed = elapsed_at_start + time.perf_counter() - start
                if s.schedule.time_budget_s is not None and broadcast_flag(
                        s.schedule.out_of_time(elapsed), s.context):
                    out_of_time = True
                    break
        self._validate(val_iter, stats, self._validation_iterations(len(stats.losses), out_of_time))
        epoch_time = time.perf_counter() - start
        self.state.elapsed_s = elapsed_at_start + epoch_time
        self._end_epoch(stats, lr, epoch_time)
        return out_of_time

    def _validation_iterations(self, trained: int, out_of_time: bool) -> int:
        """Validation iterations of this epoch: all of them, or, in the epoch the budget ran out in,
        the same share of them as of the training iterations (at least one). Without the cut a full
        validation ran after the budget was spent: 230 s past a 300 s budget on a loaded 2-core CPU."""
        val_iters = self.setup.options.val_iters
        if not out_of_time or val_iters == 0:
            return val_iters
        return max(1, math.ceil(val_iters * trained / self.setup.options.iters_per_epoch))

    def _validate(self, val_iter: Iterator[Batch], stats: EpochStats, iterations: int | None = None) -> None:
        s = self.setup
        s.network.eval()
        for _ in range(s.options.val_iters if iterations is None else iterations):
            wait_start = time.perf_counter()
            batch = next(val_iter)
            stats.wait_s += time.perf_counter() - wait_start
            self.validation_step(batch, stats)
            self.state.val_batches += 1
        s.network.train()

    def _end_epoch(self, stats: EpochStats, lr: float, epoch_time: float) -> None:
        s = self.setup
        context = s.context
        train_loss = float(all_reduce_mean(torch.tensor([float(np.mean(stats.losses))], dtype=torch.float64),
                                           context)[0])
        val_loss = float("nan")
        dice = [float("nan")] * len(s.class_names)
        if stats.val_losses:
            val_loss = float(all_reduce_mean(torch.tensor([float(np.mean(stats.val_losses))], dtype=torch.float64),
                                             context)[0])
            counts = all_reduce_sum(torch.stack([stats.tp, stats.fp, stats.fn]), context)
            tp, fp, fn = counts
            denominator = 2 * tp + fp + fn
            dice = [float(2 * t / d) if d > 0 else float("nan") for t, d in zip(tp.tolist(), denominator.tolist())]
        self._update_ema(dice)
        self.state.epoch += 1
        self._session_epoch_times.append(epoch_time)
        record = {"epoch": self.state.epoch, "train_loss": train_loss, "val_loss": val_loss, "pseudo_dice": dice,
                  "ema_pseudo_dice": self.state.ema_pseudo_dice, "lr": lr, "epoch_time_s": epoch_time,
                  "data_wait_fraction": stats.wait_s / max(epoch_time, 1e-9), "elapsed_s": self.state.elapsed_s,
                  "iterations": len(stats.losses)}
        if context.is_main:
            self.log.log_epoch(record, self._eta())
            if self.state.epoch % s.options.plot_every == 0:
                self.log.plot()
        if self._improved():
            self.save(ckpt.BEST)
        if self.state.epoch % s.options.checkpoint_every == 0:
            self.save(ckpt.LATEST)

    def _update_ema(self, dice: list[float]) -> None:
        valid = [d for d in dice if not math.isnan(d)]
        if not valid:
            return
        mean = float(np.mean(valid))
        momentum = self.setup.options.ema_momentum
        previous = self.state.ema_pseudo_dice
        self.state.ema_pseudo_dice = mean if previous is None else momentum * previous + (1 - momentum) * mean

    def _improved(self) -> bool:
        ema = self.state.ema_pseudo_dice
        if ema is None or (self.state.best_ema is not None and ema <= self.state.best_ema):
            return False
        self.state.best_ema = ema
        return True

    def _eta(self) -> float | None:
        if not self._session_epoch_times:
            return None
        schedule = self.setup.schedule
        per_epoch = float(np.mean(self._session_epoch_times))
        remaining = per_epoch * (schedule.epochs - self.state.epoch)
        if schedule.time_budget_s is not None:
            remaining = min(remaining, max(schedule.time_budget_s - self.state.elapsed_s, 0.0))
        return remaining

    @contextlib.contextmanager
    def _progress(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        """Report one task to the caller's reporter (on the main rank only), finished however it ends."""
        if not self.setup.context.is_main:
            yield lambda: None
            return
        progress = self.progress
        progress.start(description, total)
        try:
            yield lambda: progress.advance(description)
        finally:
            progress.finish(description)
