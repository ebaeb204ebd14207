"""The one progress protocol of the library.

Library stages never draw: they take a :class:`ProgressReporter` (default :data:`NO_PROGRESS`) and
report named tasks to it. The CLI passes one that draws bars (``autolung_cli.progress``); a
Python caller may pass its own, or nothing.

Prediction reports through ``autolung.inference.predictor.PredictionProgress`` (cases, and the
windows of the current case); :class:`PredictionTasks` adapts a :class:`ProgressReporter` to it,
so a caller implements this one protocol only.

A task is started with its total (``None`` when unknown), advanced step by step, then finished.
Task names are short lowercase descriptions ("fingerprint", "3d_fullres", "epoch 3").
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

__all__ = ["ProgressReporter", "NullProgress", "NO_PROGRESS", "reporter", "track", "PredictionTasks"]


@runtime_checkable
class ProgressReporter(Protocol):
    """Receives the progress of named tasks; it may draw, log or record it."""

    def start(self, task: str, total: int | None) -> None:
        """A task begins; ``total`` steps are expected (``None``: unknown)."""

    def advance(self, task: str, steps: int = 1) -> None:
        """``steps`` more steps of ``task`` are done."""

    def finish(self, task: str) -> None:
        """The task ended (completed, failed or stopped early)."""


class NullProgress:
    """Reports nothing: the library's default."""

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, steps: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        pass


NO_PROGRESS = NullProgress()


def reporter(progress: ProgressReporter | bool | None) -> ProgressReporter:
    """The reporter to use for a ``progress`` argument.

    Args:
        progress: a reporter, or ``None``/``False`` (report nothing; ``False`` is kept for callers
            written when stages took a boolean).

    Returns:
        ``progress`` itself, or :data:`NO_PROGRESS`.

    Raises:
        TypeError: ``True`` or another non-reporter: the library cannot draw a bar itself.
    """
    if progress is None or progress is False:
        return NO_PROGRESS
    if isinstance(progress, ProgressReporter) and not isinstance(progress, bool):
        return progress
    raise TypeError(f"progress must be a ProgressReporter or None, not {progress!r} "
                    "(the library draws nothing; pass a reporter such as the CLI's)")


def track(items: Iterable[T], progress: ProgressReporter, task: str, total: int | None) -> Iterator[T]:
    """Yield ``items``, advancing ``task`` after each, and finish it however the loop ends."""
    progress.start(task, total)
    try:
        for item in items:
            yield item
            progress.advance(task)
    finally:
        progress.finish(task)


class PredictionTasks:
    """A ``PredictionProgress`` over a :class:`ProgressReporter`.

    Tasks: "cases" (one step per case) and, while a case runs, one named by its case id
    counting sliding-window steps (restarted when another model's windows begin).

    Args:
        progress: the reporter to drive.
    """

    CASES = "cases"

    def __init__(self, progress: ProgressReporter) -> None:
        self._progress = progress
        self._total_cases = 0
        self._cases_done = 0
        self._case: str | None = None
        self._windows_done = 0
        self._windows_total: int | None = None

    def start(self, total_cases: int) -> None:
        self._total_cases, self._cases_done = total_cases, 0
        self._progress.start(self.CASES, total_cases)
        if total_cases == 0:
            self._progress.finish(self.CASES)

    def case_started(self, case_id: str) -> None:
        self._case, self._windows_done, self._windows_total = case_id, 0, None
        self._progress.start(case_id, None)

    def windows(self, done: int, total: int) -> None:
        if self._case is None:
            return
        if total != self._windows_total or done < self._windows_done:
            self._progress.start(self._case, total)
            self._windows_done, self._windows_total = 0, total
        if done > self._windows_done:
            self._progress.advance(self._case, done - self._windows_done)
            self._windows_done = done

    def case_finished(self, case_id: str, skipped: bool) -> None:
        self._progress.finish(case_id)
        self._case = None
        self._cases_done += 1
        self._progress.advance(self.CASES)
        if self._cases_done >= self._total_cases:
            self._progress.finish(self.CASES)
