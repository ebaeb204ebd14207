"""Planning commands: ``autolung fingerprint`` and ``autolung plan``.

``--patch-size`` and ``--target-spacing`` take several numbers after one flag
(``--patch-size 32 64 64``). Click options have a fixed number of values, so the ``plan`` command
uses :class:`MultiValueCommand`, which joins the numbers that follow such a flag into one
argument before parsing (``--patch-size "32 64 64"``); quoted, comma or ``x`` separated forms
(``--patch-size 32,64,64``, ``--patch-size=32x64x64``) work as well.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand

from autolung import api
from autolung_cli.app import app
from autolung_cli.common import PLANNER_HELP, data_root, dataset_folder, dataset_option, root_option
from autolung_cli.progress import progress_reporter

# More than the valid counts, so a wrong count reaches parse_overrides and gets its clear message.
MULTI_VALUE_OPTIONS = {"--patch-size": 8, "--target-spacing": 8}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def join_multi_values(args: list[str], options: dict[str, int] = MULTI_VALUE_OPTIONS) -> list[str]:
    """Join up to N numbers following a multi-value flag into one argument.

    Args:
        args: command-line arguments of one command.
        options: flag -> maximum number of values.

    Returns:
        The arguments with ``--flag a b c`` rewritten as ``--flag "a b c"``.
    """
    result: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        result.append(token)
        index += 1
        if token in options:
            values = []
            while index < len(args) and len(values) < options[token] and _is_number(args[index]):
                values.append(args[index])
                index += 1
            if values:
                result.append(" ".join(values))
    return result


class MultiValueCommand(TyperCommand):
    """A Typer command whose ``--patch-size``/``--target-spacing`` accept several values after one flag."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # noqa: ANN001 - click's Context type
        return super().parse_args(ctx, join_multi_values(list(args)))


@app.command("fingerprint")
def fingerprint(
    dataset: str = dataset_option(),
    root: Optional[Path] = root_option(),
    num_processes: int = typer.Option(2, "-np", "--num-processes", min=1, help="Worker processes reading cases."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Compute the dataset fingerprint (spacings, shapes, intensities, class fractions, lesion sizes)."""
    resolved = data_root(root)
    folder = dataset_folder(dataset, resolved)
    result = api.fingerprint(folder, resolved, num_processes=num_processes, progress=progress_reporter(progress))
    typer.echo(f"{result['num_cases']} cases, median spacing {[round(s, 4) for s in result['median_spacing']]}, "
               f"median shape {[int(s) for s in result['median_shape']]}")
    typer.echo(f"wrote {resolved.fingerprint_file(folder.name)}")


@app.command("plan", cls=MultiValueCommand)
def plan(
    dataset: str = dataset_option(),
    root: Optional[Path] = root_option(),
    planner: str = typer.Option(api.DEFAULT_PLANNER, "--planner", "-p", help=PLANNER_HELP),
    gpu_memory_gb: Optional[float] = typer.Option(
        None, "--gpu-memory-gb", min=0.1, help="GPU memory budget in GB (default: the planner's: 8; resenc_l 24; cpu 0.25)."),
    patch_size: Optional[str] = typer.Option(
        None, "--patch-size", help="Force the patch: Z Y X for 3D configurations, Y X for 2d."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Force the batch size."),
    target_spacing: Optional[str] = typer.Option(None, "--target-spacing", help="Force the spacing: Z Y X in mm."),
    configurations: Optional[List[str]] = typer.Option(
        None, "-c", "--configuration",
        help="Configurations the overrides apply to (repeatable; default: 3D ones for a 3-value patch, 2d for 2)."),
    explain: bool = typer.Option(False, "--explain", help="Print every decision and the rule that made it."),
    num_processes: int = typer.Option(2, "-np", "--num-processes", min=1,
                                      help="Worker processes if the fingerprint must be computed."),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget", help="Training budget the plan is sized for (planner auto), e.g. 5m, 1h."),
    device: str = typer.Option("auto", "--device", help="Device training will run on (planner auto): auto, cpu, cuda, mps."),
) -> None:
    """Plan configurations (2d, 3d_fullres, 3d_lowres + 3d_cascade_fullres) from the fingerprint."""
    overrides = api.parse_overrides(patch_size, batch_size, target_spacing, configurations)
    budget_s = api.parse_duration(time_budget) if time_budget else None
    resolved = data_root(root)
    folder = dataset_folder(dataset, resolved)
    plans = api.plan(folder, resolved, planner=planner, gpu_memory_gb=gpu_memory_gb, overrides=overrides,
                     num_processes=num_processes, progress=progress_reporter(True), device=device,
                     time_budget_s=budget_s)
    if explain:
        typer.echo(api.explain_plans(plans), nl=False)
    else:
        for name, cfg in plans.configurations.items():
            typer.echo(f"{name}: patch {cfg.patch_size}, batch {cfg.batch_size}, "
                       f"spacing {[round(s, 4) for s in cfg.spacing]}, {cfg.architecture.num_stages} stages")
    typer.echo(f"wrote {resolved.plans_file(folder.name, planner)}")
