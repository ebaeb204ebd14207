"""Library messages name parameters; the CLI shows the flags that set them."""
from __future__ import annotations

import logging

import pytest

from autolung.convert.pairs import parse_labels
from autolung.errors import AutolungError, InvalidInputError
from autolung.training.options import TrainingOptions
from autolung_cli.flags import PARAMETER_FLAGS, FlagFormatter, with_flags
from conftest import run_cli_group


def test_backquoted_parameters_become_flags() -> None:
    assert with_flags("`epochs` must be at least 1, got 0") == "--epochs must be at least 1, got 0"
    assert with_flags("`resume`: no checkpoint in x") == "--continue: no checkpoint in x"
    assert with_flags("give `dataset_name` (with `configurations`) or `model_path`") == \
        "give -d (with -c) or --model"
    # Without a flag, or not a parameter: left as the library wrote it.
    assert with_flags("`oversample_foreground` is off; run `autolung plan` first") == \
        "`oversample_foreground` is off; run `autolung plan` first"
    assert all(flag.startswith("-") for flag in PARAMETER_FLAGS.values())


def test_log_lines_show_flags() -> None:
    record = logging.LogRecord("autolung.x", logging.WARNING, __file__, 1, "set `precision` to %s", ("auto",), None)
    assert FlagFormatter("%(levelname)s %(message)s").format(record) == "WARNING set --precision to auto"
    assert record.getMessage() == "set `precision` to auto"  # the library's record itself is unchanged


def test_library_errors_name_parameters_not_flags() -> None:
    with pytest.raises(AutolungError, match=r"^`epochs` must be at least 1, got 0$"):
        TrainingOptions(epochs=0)
    with pytest.raises(InvalidInputError, match=r"^`labels`: label 'lung' must look like name=value"):
        parse_labels(["lung"])


def test_cli_error_shows_the_flag(tmp_path, monkeypatch, capsys) -> None:
    args = ["convert", "pairs", "-i", str(tmp_path), "--image-pattern", "{case}_img.nii.gz",
            "--mask-pattern", "{case}_mask.nii.gz", "-o", str(tmp_path / "out"), "--labels", "lung", "--no-progress"]
    assert run_cli_group("data_tools", args, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "error: --labels: label 'lung' must look like name=value, e.g. lung=1" in err and "`labels`" not in err
