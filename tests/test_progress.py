"""The library's one progress protocol: the no-op default, ``track`` and the prediction adapter."""
from __future__ import annotations

import pytest

from autolung.progress import NO_PROGRESS, PredictionTasks, ProgressReporter, reporter, track


def test_reporter_defaults_to_nothing_and_refuses_to_draw(recording_progress) -> None:
    assert reporter(None) is NO_PROGRESS and reporter(False) is NO_PROGRESS
    recording = recording_progress
    assert reporter(recording) is recording and isinstance(recording, ProgressReporter)
    with pytest.raises(TypeError, match="draws nothing"):
        reporter(True)


def test_track_reports_each_item_then_finishes(recording_progress) -> None:
    recording = recording_progress
    assert list(track(iter("ab"), recording, "letters", 2)) == ["a", "b"]
    assert recording.calls == [("start", "letters", 2), ("advance", "letters", 1), ("advance", "letters", 1),
                               ("finish", "letters")]


def test_track_finishes_when_the_loop_fails(recording_progress) -> None:
    recording = recording_progress

    def failing():
        yield 1
        raise ValueError("broken case")

    with pytest.raises(ValueError, match="broken case"):
        for _ in track(failing(), recording, "cases", 3):
            pass
    assert recording.calls[-1] == ("finish", "cases")
    assert recording.calls.count(("advance", "cases", 1)) == 1


def test_prediction_adapter_counts_cases_and_windows(recording_progress) -> None:
    recording = recording_progress
    tasks = PredictionTasks(recording)
    tasks.start(2)
    tasks.case_started("a")
    tasks.windows(1, 4)
    tasks.windows(4, 4)
    tasks.windows(2, 4)  # a second model's windows start over
    tasks.case_finished("a", skipped=False)
    tasks.case_started("b")
    tasks.case_finished("b", skipped=True)
    assert recording.calls == [
        ("start", "cases", 2),
        ("start", "a", None), ("start", "a", 4), ("advance", "a", 1), ("advance", "a", 3),
        ("start", "a", 4), ("advance", "a", 2), ("finish", "a"), ("advance", "cases", 1),
        ("start", "b", None), ("finish", "b"), ("advance", "cases", 1), ("finish", "cases")]


def test_conversion_evaluation_and_unpacking_report_through_the_protocol(tiny_msd, tmp_path, recording_progress):
    """convert, evaluate and the download's unpacking take a ProgressReporter, not a (done, total) callback."""
    import io
    import tarfile

    from autolung import api
    from autolung.datasets_remote.archive import extract_archive

    recording = recording_progress
    converted = api.convert("layout", tiny_msd, tmp_path / "nnunet", "nnunet", progress=recording)
    labels = sorted((tiny_msd / "labelsTr").glob("*.nii.gz"))
    assert len(labels) == 4 and (converted / "dataset.json").is_file()
    assert recording.calls == [("start", "convert", 4), *[("advance", "convert", 1)] * 4, ("finish", "convert")]

    recording.calls.clear()
    summary = api.evaluate(tiny_msd / "labelsTr", tiny_msd / "labelsTr", progress=recording)
    assert summary["mean_foreground_dice"] == 1.0
    assert recording.calls == [("start", "evaluate", 4), *[("advance", "evaluate", 1)] * 4, ("finish", "evaluate")]

    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("x/a.txt", "x/b.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / "unpacked").mkdir()
    recording.calls.clear()
    assert extract_archive(archive, tmp_path / "unpacked", progress=recording) == 2
    assert recording.calls == [("start", "unpack", 2), ("advance", "unpack", 1), ("advance", "unpack", 1),
                               ("finish", "unpack")]
