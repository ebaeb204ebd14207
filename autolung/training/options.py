"""Training options: every knob of a training run, passed as one dataclass (no globals)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from autolung.errors import AutolungError
from autolung.output_kind import AUTO_LOSS, LOSSES, OutputKind, as_output_kind
from autolung.results import BEST_CHECKPOINT

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$", re.IGNORECASE)
VALIDATION_CHECKPOINTS = ("final", "best")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class TrainingOptions:
    """How to train one fold.

    Attributes:
        epochs: number of epochs (an upper bound when ``time_budget_s`` is set).
        iters_per_epoch: training iterations per epoch.
        val_iters: validation iterations per epoch (pseudo-Dice, no augmentation).
        time_budget_s: wall-clock seconds for the whole schedule; the learning rate then decays
            with the elapsed fraction of this budget and training stops when it is spent.
        device: "auto", "cpu", "cuda" or "mps".
        num_workers: background augmentation processes; 0 runs the pipeline in-process,
            None picks a default from the core count.
        resume: continue from ``checkpoint_latest.pt`` when there is one.
        deterministic: deterministic algorithms and seeded everything (bitwise resumable on CPU).
        compile: wrap the network in ``torch.compile``.
        seed: seed for splits-independent randomness (initialisation, patches, augmentation).
        loss: "bce_dice" (sigmoid per region), "ce_dice" (softmax over background + labels), or
            "auto" (the default: the dataset's labels choose, see
            :func:`autolung.output_kind.default_output_kind`; resolved when training starts);
            selects the :attr:`output_kind`.
        planner: which plans to use ("default" reads plans.json); None: the dataset's only plans,
            else "auto".
        num_gpus: processes to spawn for DDP (1 = no spawn).
        batch_size: override the plan's (global) batch size.
        initial_lr, momentum, weight_decay, poly_exponent: SGD with Nesterov and poly decay.
        oversample_foreground: fraction of each batch forced to centre on a foreground voxel.
        deep_supervision: weight the coarser outputs 1/2^i as nnU-Net does; False trains on the
            full-resolution output alone.
        warmup_fraction: fraction of training over which the learning rate rises linearly to the
            poly schedule (0 = no warm-up, nnU-Net's recipe).
        augmentation_strength: multiplies the probability of every random augmentation (rotation,
            scaling, noise, blur, brightness, contrast, low resolution, gamma); 1 is nnU-Net's
            recipe, 0 keeps only the random crop and mirroring.
        checkpoint_every: epochs between ``checkpoint_latest.pt`` writes.
        ema_momentum: weight of the old value in the EMA of the validation pseudo-Dice.
        weight_ema_decay: keep an exponential moving average of the weights with this target decay
            (see ``autolung.training.weight_average``) and write it as ``checkpoint_weight_ema.pt``;
            None keeps none.
        precision: autocast dtype; "auto" = bfloat16 where the device runs it fast, else float32.
        channels_last: channels-last memory format; None = auto (on for 3D).
        num_threads: torch intra-op threads; None = all cores not used by workers.
        final_validation: predict the fold's validation cases with the sliding window at the end.
            It runs after ``time_budget_s`` is spent: the budget covers training only.
        validation_mode: prediction mode of the final validation ("fast", "full" or "auto", see
            ``autolung.inference.levers``); fast by default so validating a whole CT on a CPU
            takes about a minute instead of a quarter of an hour.
        plot_every: epochs between ``progress.png`` redraws.
        checkpointing: write checkpoints; False writes none (quick experiments; the final
            validation still runs on the network in memory).
        validation_only: train nothing: run the final validation of an already trained fold again.
        pretrained_weights: a checkpoint to start from (fine-tuning); every weight of the same name
            and shape is loaded, segmentation heads are skipped when the labels differ. Ignored
            when ``resume`` finds a checkpoint of this run.
        validation_checkpoint: which weights the final validation uses: "final" (the last epoch)
            or "best" (the best EMA pseudo-Dice, ``checkpoint_best.pt``).
    """

    epochs: int = 1000
    iters_per_epoch: int = 250
    val_iters: int = 50
    time_budget_s: float | None = None
    device: str = "auto"
    num_workers: int | None = None
    resume: bool = False
    deterministic: bool = False
    compile: bool = False
    seed: int = 12345
    loss: str = AUTO_LOSS
    planner: str | None = None
    num_gpus: int = 1
    batch_size: int | None = None
    initial_lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    poly_exponent: float = 0.9
    oversample_foreground: float = 0.33
    deep_supervision: bool = True
    warmup_fraction: float = 0.0
    augmentation_strength: float = 1.0
    checkpoint_every: int = 5
    ema_momentum: float = 0.9
    weight_ema_decay: float | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    num_threads: int | None = None
    final_validation: bool = True
    validation_mode: str = "fast"
    plot_every: int = 1
    checkpointing: bool = True
    validation_only: bool = False
    validation_checkpoint: str = "final"
    pretrained_weights: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def output_kind(self) -> OutputKind:
        """The network's output kind, chosen by ``loss`` (an error while ``loss`` is still "auto")."""
        return as_output_kind(self.loss)

    def validate(self) -> None:
        """Raise :class:`AutolungError` for values that cannot work.

        Returns:
            None.
        """
        positive = {"epochs": self.epochs, "iters_per_epoch": self.iters_per_epoch,
                    "num_gpus": self.num_gpus, "checkpoint_every": self.checkpoint_every}
        for name, value in positive.items():
            if value < 1:
                raise AutolungError(f"`{name}` must be at least 1, got {value}")
        if self.val_iters < 0:
            raise AutolungError(f"`val_iters` must be 0 or more, got {self.val_iters}")
        if self.validation_mode not in ("auto", "full", "fast"):
            raise AutolungError(f"`validation_mode` must be auto, full or fast, got {self.validation_mode!r}")
        if self.loss not in (AUTO_LOSS, *LOSSES):
            raise AutolungError(f"`loss` must be one of {', '.join((AUTO_LOSS, *LOSSES))}, got {self.loss!r}")
        if self.device not in DEVICES:
            raise AutolungError(f"`device` must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise AutolungError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise AutolungError(f"`num_workers` must be 0 or more, got {self.num_workers}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise AutolungError(f"`time_budget_s` must be positive, got {self.time_budget_s} s")
        if self.validation_checkpoint not in VALIDATION_CHECKPOINTS:
            raise AutolungError(f"`validation_checkpoint` must be one of {', '.join(VALIDATION_CHECKPOINTS)}, "
                                f"got {self.validation_checkpoint!r}")
        if self.validation_checkpoint == "best" and not self.checkpointing:
            raise AutolungError("validation with the best checkpoint (`validation_checkpoint`) needs "
                                f"{BEST_CHECKPOINT}, which is not written when checkpointing is off (`checkpointing`)")
        if self.validation_only and not self.checkpointing:
            raise AutolungError("validation only (`validation_only`) reads the fold's checkpoint, which is not "
                                "written when checkpointing is off (`checkpointing`)")
        if not self.initial_lr > 0.0:
            raise AutolungError(f"`initial_lr` must be positive, got {self.initial_lr}")
        if not 0.0 <= self.oversample_foreground <= 1.0:
            raise AutolungError(f"`oversample_foreground` must be in [0, 1], got {self.oversample_foreground}")
        if not 0.0 <= self.warmup_fraction <= 0.5:
            raise AutolungError(f"`warmup_fraction` must be in [0, 0.5], got {self.warmup_fraction}")
        if self.weight_ema_decay is not None and not 0.0 < self.weight_ema_decay < 1.0:
            raise AutolungError(f"`weight_ema_decay` must be in (0, 1), got {self.weight_ema_decay}")
        if not 0.0 <= self.augmentation_strength <= 1.0:
            raise AutolungError(f"`augmentation_strength` must be in [0, 1], got {self.augmentation_strength}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_duration(text: str) -> float:
    """Seconds from "90s", "30m", "1.5h" (a bare number is seconds).

    Args:
        text: the duration as typed by the user.

    Returns:
        The duration in seconds (positive).

    Raises:
        AutolungError: when the text is not a positive duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise AutolungError(f"cannot read duration {text!r}; use e.g. 90s, 30m or 1.5h")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise AutolungError(f"duration {text!r} must be positive")
    return seconds
