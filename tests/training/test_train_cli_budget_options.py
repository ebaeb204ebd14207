"""``autolung train --threads/--batch-size`` reach TrainingOptions (the time-to-accuracy ablations use them)."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import autolung.training.run as training_run
import autolung_cli.commands.train  # noqa: F401 - registers the command
from autolung_cli.app import app


def test_threads_and_batch_size_reach_the_options(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_train_fold(root, name, configuration, fold, options, distributed=None, progress=None):
        seen.update(threads=options.num_threads, batch=options.batch_size, budget=options.time_budget_s,
                    progress=type(progress).__name__)
        return tmp_path

    monkeypatch.setattr(training_run, "train_fold", fake_train_fold)
    (tmp_path / "preprocessed" / "D").mkdir(parents=True)
    result = CliRunner().invoke(app, ["train", "-d", "D", "-c", "2d", "-f", "0", "--root", str(tmp_path),
                                      "--threads", "1", "--batch-size", "3", "--time-budget", "2m"])
    assert result.exit_code == 0, result.output
    assert seen == {"threads": 1, "batch": 3, "budget": 120.0, "progress": "RichProgress"}
