"""``autolung preprocess``, ``autolung plan_and_preprocess`` and ``autolung demo_data``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from autolung import api
from autolung.errors import DatasetProblemsError
from autolung_cli.app import app
from autolung_cli.common import PLANNER_HELP, data_root, dataset_folder, dataset_option, root_option
from autolung_cli.progress import progress_reporter
from autolung_cli.multivalue import multi_value_command

CONFIG_HELP = "Configurations, several after one flag (-c 2d 3d_fullres); default: all planned."
NP_HELP = "Worker processes."



def _configurations_option() -> Optional[List[str]]:
    return typer.Option(None, "-c", "--configurations", help=CONFIG_HELP)


def _processes_option() -> int:
    return typer.Option(2, "-np", "--num-processes", min=1, help=NP_HELP)


def _planner_option() -> Optional[str]:
    return typer.Option(None, "--planner", help="Planner whose plans to use (plans_<planner>.json); "
                                                "default: the dataset's only plans.")


def _split_names(values: Optional[List[str]]) -> Optional[list[str]]:
    """``["2d,3d_fullres", "3d_lowres"]`` -> ``["2d", "3d_fullres", "3d_lowres"]``; None when empty."""
    if not values:
        return None
    return [name for value in values for name in value.replace(",", " ").split()]


def _report(summary: object) -> None:
    for configuration, done in summary.processed.items():
        skipped = len(summary.skipped.get(configuration, []))
        folder = summary.folders[configuration]
        typer.echo(f"{configuration}: preprocessed {len(done)} case(s), {skipped} already done -> {folder}")


@app.command("preprocess", cls=multi_value_command("-c", "--configurations"),
             help="Preprocess a planned dataset (crop, normalize, resample) into <root>/preprocessed.")
def preprocess_command(
    dataset: str = dataset_option(),
    configurations: Optional[List[str]] = _configurations_option(),
    num_processes: int = _processes_option(),
    planner: Optional[str] = _planner_option(),
    root: Optional[Path] = root_option(),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    data = data_root(root)
    folder = dataset_folder(dataset, data)
    summary = api.preprocess(folder, data, _split_names(configurations), num_processes, planner,
                             progress=progress_reporter(not no_progress))
    _report(summary)


@app.command("plan_and_preprocess",
             cls=multi_value_command("-c", "--configurations", "--patch-size", "--target-spacing"),
             help="Fingerprint, plan and preprocess a dataset in one go.")
def plan_and_preprocess_command(
    dataset: str = dataset_option(),
    configurations: Optional[List[str]] = _configurations_option(),
    num_processes: int = _processes_option(),
    verify: bool = typer.Option(False, "--verify", help="Check the dataset first; stop listing its problems."),
    planner: str = typer.Option(api.DEFAULT_PLANNER, "--planner", help=PLANNER_HELP),
    gpu_memory_gb: Optional[float] = typer.Option(None, "--gpu-memory-gb", help="GPU memory budget for planning."),
    patch_size: Optional[List[str]] = typer.Option(None, "--patch-size", help="Force the patch size: Z Y X (3D) or Y X (2d)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Force the batch size."),
    target_spacing: Optional[List[str]] = typer.Option(None, "--target-spacing", help="Force the spacing: Z Y X in mm."),
    clean: bool = typer.Option(False, "--clean", help="Recompute the fingerprint even if one exists."),
    root: Optional[Path] = root_option(),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget", help="Training budget the plan is sized for (planner auto), e.g. 5m, 1h."),
    device: str = typer.Option("auto", "--device", help="Device training will run on (planner auto): auto, cpu, cuda, mps."),
) -> None:
    data = data_root(root)
    folder = dataset_folder(dataset, data)
    # Parse overrides before any long step, so a typo fails at once.
    overrides = api.parse_overrides(patch_size=patch_size, batch_size=batch_size, target_spacing=target_spacing)
    budget_s = api.parse_duration(time_budget) if time_budget else None
    try:
        prepared = api.plan_and_preprocess(
            folder, data, _split_names(configurations), num_processes, planner, gpu_memory_gb=gpu_memory_gb,
            overrides=overrides, run_verify=verify, progress=progress_reporter(not no_progress), device=device,
            time_budget_s=budget_s, clean=clean, max_listed_problems=0)
    except DatasetProblemsError as exc:
        # One line per problem here; the error that follows counts them.
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise
    if verify:
        typer.echo(f"{folder}: dataset OK, {prepared.num_cases_verified} cases")
    typer.echo(f"planned {', '.join(prepared.plans.configurations)} -> {prepared.plans_file}")
    _report(prepared.preprocessing)


@app.command("demo_data", help="Write the built-in synthetic lung CT dataset to <root>/raw/Demo_LungCT.")
def demo_data_command(
    root: Optional[Path] = root_option(),
    num_cases: int = typer.Option(20, "--num-cases", min=1, help="Number of cases."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same files."),
    with_lung_label: bool = typer.Option(False, "--with-lung-label", help="Also label the lungs (2)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Dataset folder to write instead of <root>/raw/Demo_LungCT."),
) -> None:
    written = api.demo_data(data_root(root), num_cases=num_cases, seed=seed, with_lung_label=with_lung_label,
                            output=output)
    typer.echo(f"wrote {num_cases} synthetic CT cases to {written}")


def _register_aliases() -> None:
    """Hidden hyphenated spellings (``plan-and-preprocess``, ``demo-data``)."""
    aliases = (("plan-and-preprocess", plan_and_preprocess_command,
                multi_value_command("-c", "--configurations", "--patch-size", "--target-spacing")),
               ("demo-data", demo_data_command, None))
    for name, function, cls in aliases:
        kwargs = {"hidden": True} | ({"cls": cls} if cls is not None else {})
        app.command(name, **kwargs)(function)


_register_aliases()
