"""``autolung benchmark``: the whole pipeline on several datasets, with a report.

``-d``, ``-c`` and ``-f`` take several values after one flag (``-d A B -c 2d 3d_fullres -f 0 1``).
Rerunning with the same ``-o`` (or ``--name``) resumes: finished steps are skipped.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from autolung import api
from autolung.errors import AutolungError
from autolung_cli.app import app
from autolung_cli.common import PLANNER_HELP, data_root, root_option
from autolung_cli.multivalue import multi_value_command

BENCHMARKS_FOLDER = "benchmarks"


def _split(values: Optional[List[str]]) -> list[str]:
    """Accept repeated, space- and comma-separated values alike."""
    return [part for value in values or [] for part in value.replace(",", " ").split()]


def _folds(values: Optional[List[str]]) -> list[int] | None:
    folds = []
    for text in _split(values):
        if not text.isdigit():
            raise AutolungError(f"-f/--folds takes fold numbers (0, 1, ...), got {text!r}")
        folds.append(int(text))
    return folds or None


def _report_dir(output: Optional[Path], name: Optional[str], root_folder: Path) -> Path:
    if output is not None:
        return output.expanduser().resolve()
    stamp = name or datetime.now().strftime("%Y%m%d-%H%M%S")
    return root_folder / BENCHMARKS_FOLDER / stamp


@app.command("benchmark", cls=multi_value_command("-d", "--dataset", "-c", "--configurations", "-f", "--folds"),
             help="Verify, plan, preprocess, train, cross-validate and evaluate datasets; write a report.")
def benchmark_command(
    datasets: List[str] = typer.Option(..., "-d", "--dataset",
                                       help="Dataset names under raw/ or paths; several allowed."),
    configurations: Optional[List[str]] = typer.Option(
        None, "-c", "--configurations",
        help="Configurations to train (default: the one the plans recommend; plan --explain says which)."),
    folds: Optional[List[str]] = typer.Option(None, "-f", "--folds", help="Folds to train (default: all)."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget",
                                              help="Wall-clock budget per fold, e.g. 90s, 10m, 1.5h."),
    epochs: int = typer.Option(1000, "--epochs", help="Epochs per fold (an upper bound with --time-budget)."),
    iters_per_epoch: int = typer.Option(250, "--iters-per-epoch", help="Training iterations per epoch."),
    val_iters: int = typer.Option(50, "--val-iters", help="Validation iterations per epoch."),
    planner: str = typer.Option(api.DEFAULT_PLANNER, "--planner", help=PLANNER_HELP),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, mps or auto."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers",
                                              help="Augmentation worker processes (0 = in-process)."),
    num_processes: int = typer.Option(2, "-np", "--num-processes",
                                      help="Processes for verify, fingerprint and preprocessing."),
    nsd_tolerance: float = typer.Option(2.0, "--nsd-tolerance", help="NSD tolerance in mm."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Report folder (default: <root>/benchmarks/<--name or timestamp>)."),
    name: Optional[str] = typer.Option(None, "--name", help="Report folder name under <root>/benchmarks."),
    compare: Optional[Path] = typer.Option(None, "--compare",
                                           help="Another benchmark report (folder or report.json) to show beside."),
    compare_nnunet: Optional[Path] = typer.Option(
        None, "--compare-nnunet", help="nnU-Net v2 results folder (Dataset*/<trainer>__<plans>__<config>/fold_*)."),
    nnunet_names: Optional[List[str]] = typer.Option(
        None, "--nnunet-name", help="Match a dataset explicitly: OURS=Dataset004_Name (repeatable)."),
    root: Optional[Path] = root_option(),
) -> None:
    """Benchmark datasets end to end: autolung benchmark -d A -d B --time-budget 10m."""
    resolved = data_root(root)
    comparisons = api.benchmark_comparisons(compare, compare_nnunet, nnunet_names)
    training = api.training_options(epochs=epochs, iters_per_epoch=iters_per_epoch, val_iters=val_iters,
                                    time_budget_s=api.parse_duration(time_budget) if time_budget else None,
                                    device=device, num_workers=num_workers, planner=planner)
    settings = api.benchmark_settings(_split(datasets), training, configurations=_split(configurations) or None,
                                      folds=_folds(folds), num_processes=num_processes,
                                      nsd_tolerance_mm=nsd_tolerance)
    report_dir = _report_dir(output, name, resolved.root)
    typer.echo(f"benchmark report folder: {report_dir} (rerun with -o {report_dir} to resume)")
    outcome = api.benchmark(settings, resolved, report_dir, comparisons)
    for kind in ("md", "csv", "json", "figure"):
        typer.echo(f"wrote {outcome.paths[kind]}")
    if outcome.failures:
        listed = "; ".join(f"{d} ({f['step']}): {f['message']}" for d, f in outcome.failures.items())
        raise AutolungError(f"{len(outcome.failures)} dataset(s) did not finish: {listed}", path=report_dir)
