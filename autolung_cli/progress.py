"""The CLI's progress reporter: rich bars on stderr for the library's :class:`ProgressReporter`."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from autolung.progress import NO_PROGRESS, ProgressReporter


class RichProgress:
    """Draws one transient bar per running task.

    The live display (and its refresh thread) runs only while a task is running: stages fork
    worker processes before they start their task, and a fork must not copy a lock held by
    that thread.

    Args:
        console: where to draw; default stderr, so stdout stays for results.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int | None) -> None:
        if self._bars is None:
            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self._console, transient=True)
            self._bars.start()
        if task in self._tasks:
            self._bars.reset(self._tasks[task], total=total)
        else:
            self._tasks[task] = self._bars.add_task(task, total=total)

    def advance(self, task: str, steps: int = 1) -> None:
        if self._bars is not None and task in self._tasks:
            self._bars.advance(self._tasks[task], steps)

    def finish(self, task: str) -> None:
        task_id = self._tasks.pop(task, None)
        if self._bars is None or task_id is None:
            return
        self._bars.remove_task(task_id)
        if not self._tasks:
            self.close()

    def close(self) -> None:
        """Stop drawing (the tasks still running are dropped)."""
        if self._bars is not None:
            self._bars.stop()
        self._bars = None
        self._tasks.clear()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_reporter(enabled: bool) -> ProgressReporter:
    """The reporter for a command: rich bars, or nothing when ``--no-progress`` was given."""
    return RichProgress() if enabled else NO_PROGRESS
