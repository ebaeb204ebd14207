"""``autolung train``: train one fold of one configuration."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from autolung import api
from autolung.errors import InvalidInputError
from autolung_cli.app import app
from autolung_cli.common import TRAINED_PLANNER_HELP, data_root, dataset_name, dataset_option, root_option
from autolung_cli.progress import progress_reporter


def _distributed_from_environment() -> object | None:
    """The rank torchrun assigned to this process, or None when not launched by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size <= 1:
        return None
    return api.distributed_context(rank=int(os.environ["RANK"]), world_size=world_size,
                                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@app.command("train")
def train(
    dataset: str = dataset_option(),
    configuration: Optional[str] = typer.Option(
        None, "-c", "--configuration",
        help="Configuration: 2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres (default: the one the plans recommend; "
             "plan --explain says which and why)."),
    fold: str = typer.Option(..., "-f", "--fold", help="Fold 0-4, or 'all' to train on every case."),
    planner: Optional[str] = typer.Option(None, "--planner", help=TRAINED_PLANNER_HELP),
    epochs: int = typer.Option(1000, "--epochs", help="Number of epochs (an upper bound with --time-budget)."),
    iters_per_epoch: int = typer.Option(250, "--iters-per-epoch", help="Training iterations per epoch."),
    val_iters: int = typer.Option(50, "--val-iters", help="Validation iterations per epoch."),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget", help="Fit the whole schedule into this wall-clock time, e.g. 90s, 30m, 1.5h "
                                    "(default: the budget the plan was sized for, if any)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, mps or auto."),
    num_workers: Optional[int] = typer.Option(
        None, "--num-workers", help="Augmentation worker processes (0 = in-process; default from the core count)."),
    resume: bool = typer.Option(False, "--continue", help="Resume from checkpoint_latest.pt."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic algorithms (slower)."),
    compile_network: bool = typer.Option(False, "--compile", help="Use torch.compile."),
    seed: int = typer.Option(12345, "--seed", help="Random seed."),
    num_gpus: int = typer.Option(1, "--num-gpus", help="Spawn this many DDP processes (gloo on CPU)."),
    loss: str = typer.Option("auto", "--loss",
                             help="auto (softmax for two or more mutually exclusive labels, else sigmoid), "
                                  "bce_dice (sigmoid regions) or ce_dice (softmax)."),
    no_validation: bool = typer.Option(False, "--no-final-validation",
                                       help="Skip predicting the validation cases at the end."),
    pretrained_weights: Optional[Path] = typer.Option(
        None, "--pretrained-weights",
        help="Start from this checkpoint (fine-tuning): every matching weight is loaded; the segmentation heads "
             "are skipped when the labels differ; a different architecture is refused."),
    val_only: bool = typer.Option(False, "--val-only",
                                  help="Train nothing: run the final validation of this trained fold again."),
    val_best: bool = typer.Option(False, "--val-best",
                                  help="Final validation with checkpoint_best.pt instead of the final weights."),
    disable_checkpointing: bool = typer.Option(False, "--disable-checkpointing",
                                               help="Write no checkpoint (experiments; cannot resume or predict)."),
    validation_mode: str = typer.Option("fast", "--validation-mode",
                                        help="Prediction mode of the final validation: fast, full or auto "
                                             "(see predict --mode). It runs after --time-budget."),
    root: Optional[Path] = root_option(),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="torch threads (default: all cores not used by workers)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Override the plan's batch size."),
    learning_rate: float = typer.Option(1e-2, "--learning-rate", help="Initial learning rate of the poly schedule."),
    oversample_foreground: float = typer.Option(
        0.33, "--oversample-foreground",
        help="Fraction of each batch centred on a foreground voxel of a random class the case holds."),
    deep_supervision: bool = typer.Option(
        True, "--deep-supervision/--no-deep-supervision",
        help="Weight the coarser outputs 1/2^i (nnU-Net's scheme); off trains on the full-resolution output alone."),
    warmup: float = typer.Option(
        0.0, "--warmup", help="Fraction of training (0-0.5) over which the learning rate rises linearly; 0 = none."),
    augmentation_strength: float = typer.Option(
        1.0, "--augmentation-strength",
        help="Multiplies every random augmentation's probability: 1 = nnU-Net's recipe, 0 = crop and mirroring only."),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto (bfloat16 autocast where the hardware runs it natively, else float32), "
                                       "float32, bfloat16 or float16 (CUDA)."),
    weight_ema: Optional[float] = typer.Option(
        None, "--weight-ema", min=0.0, max=1.0,
        help="Also keep a moving average of the weights with this decay (e.g. 0.999), written as "
             "checkpoint_weight_ema.pt for predict --checkpoint weight_ema."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars (the epoch log lines stay)."),
) -> None:
    """Train one fold: autolung train -d Dataset -f 0 (-c 3d_fullres to name the configuration)."""
    resolved_root = data_root(root)
    name = _dataset_name(dataset, resolved_root)
    configuration = api.training_configuration(name, resolved_root, configuration, planner)
    folder = api.train(
        name, resolved_root, configuration, fold, progress=progress_reporter(not no_progress),
        distributed=_distributed_from_environment(), epochs=epochs, iters_per_epoch=iters_per_epoch,
        val_iters=val_iters, time_budget_s=api.parse_duration(time_budget) if time_budget else None, device=device,
        num_workers=num_workers,
        resume=resume, deterministic=deterministic, compile=compile_network, seed=seed, loss=loss, planner=planner,
        num_gpus=num_gpus, final_validation=not no_validation, validation_mode=validation_mode,
        checkpointing=not disable_checkpointing, validation_only=val_only,
        validation_checkpoint="best" if val_best else "final",
        pretrained_weights=str(pretrained_weights) if pretrained_weights else None,
        num_threads=threads, batch_size=batch_size, initial_lr=learning_rate,
        oversample_foreground=oversample_foreground, deep_supervision=deep_supervision,
        warmup_fraction=warmup, augmentation_strength=augmentation_strength, weight_ema_decay=weight_ema,
        precision=precision)
    typer.echo(f"{'validated' if val_only else 'trained'} {configuration} fold {fold}: {folder}")


def _dataset_name(dataset: str, root: object) -> str:
    # A dataset may exist only under preprocessed/ (raw data elsewhere); accept its name as is.
    try:
        return dataset_name(dataset, root)
    except InvalidInputError:
        if (root.preprocessed / dataset).is_dir():
            return dataset
        raise
