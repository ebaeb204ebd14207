"""The CLI draws what the library reports: rich progress bars and the evaluation table."""
from __future__ import annotations

import io
import math

from rich.console import Console

from autolung.evaluation.report import summary_table
from autolung_cli.commands.evaluate import rich_table
from autolung_cli.progress import RichProgress, progress_reporter
from autolung.progress import NO_PROGRESS


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def test_rich_progress_runs_a_display_only_while_tasks_run() -> None:
    console, _ = _console()
    bars = RichProgress(console)
    bars.start("fingerprint", 3)
    bars.advance("fingerprint")
    bars.advance("fingerprint", 2)
    running = bars._bars
    assert running is not None and running.tasks[0].completed == 3 and running.tasks[0].total == 3
    bars.start("epoch 0", None)
    bars.finish("fingerprint")
    assert bars._bars is running and [t.description for t in running.tasks] == ["epoch 0"]
    bars.finish("epoch 0")
    assert bars._bars is None  # no refresh thread left while a stage forks its workers
    bars.advance("epoch 0")  # a late step of a finished task is ignored
    bars.finish("never started")


def test_progress_reporter_follows_no_progress() -> None:
    assert progress_reporter(False) is NO_PROGRESS
    with progress_reporter(True) as bars:
        assert isinstance(bars, RichProgress)


def test_evaluation_summary_is_rows_that_the_cli_draws() -> None:
    summary = {"num_cases": 2, "tolerance_mm": 2.0,
               "per_class": {"1": {name: {"mean": 0.5, "std": 0.25} for name in
                                   ("dice", "iou", "hd95", "nsd", "precision", "recall", "volume_diff_ml")}},
               "lesions": {"1": {"lesion_sensitivity": 0.75, "fp_per_case": math.nan}}}
    summary["per_class"]["1"]["hd95"] = {"mean": math.nan, "std": math.nan}
    table = summary_table(summary)
    assert table.title == "2 cases, NSD tolerance 2.0 mm"
    assert table.columns == ("class", "dice", "iou", "hd95", "nsd", "precision", "recall", "volume_diff_ml",
                             "lesion sens.", "FP/case")
    assert table.rows == (("1", "0.500 ± 0.250", "0.500 ± 0.250", "n/a", "0.500 ± 0.250", "0.500 ± 0.250",
                           "0.500 ± 0.250", "0.500 ± 0.250", "0.750", "n/a"),)
    console, buffer = _console()
    console.print(rich_table(table))
    drawn = buffer.getvalue()
    assert "2 cases, NSD tolerance 2.0 mm" in drawn and "0.500 ± 0.250" in drawn and "0.750" in drawn


def test_train_no_progress_passes_the_silent_reporter(monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from autolung import api
    import autolung_cli.commands.train as train_command
    from autolung_cli.app import app

    seen = {}

    def fake_train(name, root, configuration, fold, progress, **options):
        seen["progress"] = progress
        return tmp_path

    monkeypatch.setattr(api, "train", fake_train)
    monkeypatch.setattr(train_command, "_dataset_name", lambda dataset, root: dataset)
    runner = CliRunner()
    args = ["train", "-d", "Tiny", "-c", "2d", "-f", "0", "--root", str(tmp_path)]
    assert runner.invoke(app, [*args, "--no-progress"]).exit_code == 0
    assert seen["progress"] is NO_PROGRESS
    assert runner.invoke(app, args).exit_code == 0
    assert isinstance(seen["progress"], RichProgress)
