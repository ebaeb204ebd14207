"""``state.json``: which benchmark steps are finished, so an interrupted run resumes.

Layout::

    {"version": 1, "datasets": {"<name>": {"steps": {"<step>": {"finished_at": "...", ...info}},
                                           "failed": {"step": "...", "message": "..."}}}}

Every change is written at once and atomically: a run killed at any point leaves the file as it
was after the last finished step.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autolung.errors import InvalidInputError
from autolung.utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_VERSION = 1


class BenchmarkState:
    """The finished steps of one benchmark report folder.

    Args:
        path: the ``state.json`` file; read when it exists.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = _read_state(self.path)

    def _dataset(self, dataset: str) -> dict[str, Any]:
        return self.data["datasets"].setdefault(dataset, {"steps": {}})

    def is_done(self, dataset: str, step: str) -> bool:
        """Whether ``step`` of ``dataset`` was recorded as finished.

        Args:
            dataset: dataset name.
            step: step key, e.g. ``"plan"`` or ``"train/3d_fullres/fold_0"``.

        Returns:
            True when finished.
        """
        return step in self.data["datasets"].get(dataset, {}).get("steps", {})

    def info(self, dataset: str, step: str) -> dict[str, Any] | None:
        """What a finished step recorded, or None.

        Args:
            dataset: dataset name.
            step: step key.

        Returns:
            The recorded dict (with ``finished_at``) or None when not finished.
        """
        return self.data["datasets"].get(dataset, {}).get("steps", {}).get(step)

    def mark_done(self, dataset: str, step: str, info: dict[str, Any] | None = None) -> None:
        """Record ``step`` as finished (and clear a failure recorded for it); save at once.

        Args:
            dataset: dataset name.
            step: step key.
            info: JSON-serialisable facts about the step.

        Returns:
            None.
        """
        entry = self._dataset(dataset)
        entry["steps"][step] = {"finished_at": _now(), **(info or {})}
        if entry.get("failed", {}).get("step") == step:
            entry.pop("failed")
        self.save()

    def forget(self, dataset: str, prefixes: tuple[str, ...]) -> list[str]:
        """Drop finished steps whose key starts with one of ``prefixes`` (their inputs changed).

        Args:
            dataset: dataset name.
            prefixes: step key prefixes, e.g. ``("cv/", "evaluate/")``.

        Returns:
            The forgotten step keys.
        """
        recorded = self.data["datasets"].get(dataset, {}).get("steps", {})
        dropped = [key for key in recorded if key.startswith(prefixes)]
        for key in dropped:
            del recorded[key]
        if dropped:
            self.save()
        return dropped

    def mark_failed(self, dataset: str, step: str, message: str) -> None:
        """Record that ``step`` failed (the next run retries it); save at once.

        Args:
            dataset: dataset name.
            step: step key.
            message: the error message.

        Returns:
            None.
        """
        self._dataset(dataset)["failed"] = {"step": step, "message": message, "at": _now()}
        self.save()

    def failure(self, dataset: str) -> dict[str, Any] | None:
        """The recorded failure of ``dataset`` in this run or an earlier one, or None.

        Args:
            dataset: dataset name.

        Returns:
            ``{"step", "message", "at"}`` or None.
        """
        return self.data["datasets"].get(dataset, {}).get("failed")

    def clear_failure(self, dataset: str) -> None:
        """Forget a recorded failure (a new attempt is starting).

        Args:
            dataset: dataset name.

        Returns:
            None.
        """
        if self.data["datasets"].get(dataset, {}).pop("failed", None) is not None:
            self.save()

    def save(self) -> None:
        """Write ``state.json`` atomically.

        Returns:
            None.
        """
        write_json_atomic(self.path, self.data)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": STATE_VERSION, "datasets": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read benchmark state ({exc}); delete it to start over", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise InvalidInputError("not a benchmark state file (no \"datasets\" object); delete it to start over",
                                path=path)
    logger.info("resuming benchmark from %s", path)
    return data
