from __future__ import annotations

import json
import math

import pytest

from autolung.benchmarking.compare import load_report
from autolung.benchmarking.report import Comparisons, build_report, write_report
from autolung.errors import InvalidInputError

from .helpers import case, lung_result


def _previous_report(tmp_path):
    older = lung_result()
    older["configurations"]["3d_fullres"]["cases"] = [case("a", {"1": (0.5, 9.0, 0.5)}),
                                                      case("b", {"1": (0.7, 11.0, 0.7)})]
    write_report(build_report([older]), tmp_path / "old")
    return tmp_path / "old"


def test_compare_adds_other_columns_side_by_side(tmp_path):
    old = _previous_report(tmp_path)
    for source in (old, old / "report.json"):  # a report folder or its report.json
        other = load_report(source)
        report = build_report([lung_result()], comparisons=Comparisons(other=other, other_source=str(source)))
        rows = {r["class"]: r for r in report["rows"]}
        assert rows["1"]["dice_mean"] == pytest.approx(0.75)
        assert rows["1"]["dice_mean_other"] == pytest.approx(0.6)
        assert rows["1"]["hd95_mean_other"] == pytest.approx(10.0)
        assert math.isnan(rows["2"]["dice_mean_other"])  # class 2 is not in the other report
    paths = write_report(report, tmp_path / "new")
    text = paths["md"].read_text()
    assert "Dice (other)" in text and "| 0.600 | 10.00 | 0.600 |" in text
    header = paths["csv"].read_text().splitlines()[0]
    assert "dice_mean_other" in header and "hd95_mean_other" in header
    assert json.loads(paths["json"].read_text())["comparisons"]["other"] == str(old / "report.json")


def test_compare_with_a_non_report_fails_clearly(tmp_path):
    with pytest.raises(InvalidInputError, match="no benchmark report found"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text('{"something": 1}')
    with pytest.raises(InvalidInputError, match="not an autolung benchmark report"):
        load_report(tmp_path)
