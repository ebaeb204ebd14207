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


def test_recipe_options_reach_the_options(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_train_fold(root, name, configuration, fold, options, distributed=None, progress=None):
        seen.update(lr=options.initial_lr, oversample=options.oversample_foreground,
                    deep_supervision=options.deep_supervision, warmup=options.warmup_fraction,
                    augmentation=options.augmentation_strength, weight_ema=options.weight_ema_decay,
                    precision=options.precision)
        return tmp_path

    monkeypatch.setattr(training_run, "train_fold", fake_train_fold)
    (tmp_path / "preprocessed" / "D").mkdir(parents=True)
    arguments = ["train", "-d", "D", "-c", "2d", "-f", "0", "--root", str(tmp_path)]
    assert CliRunner().invoke(app, arguments).exit_code == 0
    assert seen == {"lr": 1e-2, "oversample": 0.33, "deep_supervision": True, "warmup": 0.0, "augmentation": 1.0,
                    "weight_ema": None, "precision": "auto"}
    result = CliRunner().invoke(app, [*arguments, "--learning-rate", "0.02", "--oversample-foreground", "0.66",
                                      "--no-deep-supervision", "--warmup", "0.1", "--augmentation-strength", "0.5",
                                      "--weight-ema", "0.999", "--precision", "float32"])
    assert result.exit_code == 0, result.output
    assert seen == {"lr": 0.02, "oversample": 0.66, "deep_supervision": False, "warmup": 0.1, "augmentation": 0.5,
                    "weight_ema": 0.999, "precision": "float32"}


def test_out_of_range_recipe_options_exit_non_zero_naming_the_parameter(tmp_path: Path) -> None:
    (tmp_path / "preprocessed" / "D").mkdir(parents=True)
    arguments = ["train", "-d", "D", "-c", "2d", "-f", "0", "--root", str(tmp_path)]
    for extra, name in ((["--learning-rate", "0"], "initial_lr"),
                        (["--oversample-foreground", "1.5"], "oversample_foreground"),
                        (["--warmup", "0.8"], "warmup_fraction"),
                        (["--augmentation-strength", "-0.1"], "augmentation_strength"),
                        (["--weight-ema", "1"], "weight_ema_decay"),
                        (["--precision", "half"], "precision")):
        result = CliRunner().invoke(app, [*arguments, *extra])
        assert result.exit_code != 0
        assert name in result.output + str(result.exception)
