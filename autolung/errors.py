"""Error types that the CLI turns into one clear line and a non-zero exit."""
from __future__ import annotations

from pathlib import Path


class AutolungError(Exception):
    """A user-facing problem: bad input, a missing file, an invalid plan.

    The message names the file (when there is one) and the problem, so the CLI can print it
    as a single line without a traceback.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class InvalidInputError(AutolungError):
    """An input file or folder cannot be used as it is."""


class InvalidPlansError(AutolungError):
    """A plans.json (or other configuration file) fails validation."""


class UnsafeFileError(AutolungError):
    """An untrusted file (model bundle, checkpoint, path) tried to do something unsafe."""


class LockedError(AutolungError):
    """Another live process holds the lock on an output folder."""


class WriteFailedError(AutolungError, OSError):
    """A file could not be written (disk full, read-only folder, no permission).

    Still an ``OSError`` (with ``errno`` set) for callers that catch those; the target file was
    left as it was.
    """

    def __init__(self, message: str, path: str | Path | None = None, errno: int | None = None) -> None:
        AutolungError.__init__(self, message, path)
        self.errno = errno


class DatasetProblemsError(InvalidInputError):
    """verify found problems in a dataset: one message for them all, each kept in ``problems``.

    Args:
        problems: every problem (objects whose ``str`` names the file and the problem).
        num_cases: how many cases were checked.
        folder: the dataset folder.
        max_listed: problems named in the message (None: all; 0: none, for a caller that lists
            ``problems`` itself).
    """

    def __init__(self, problems: list, num_cases: int, folder: str | Path, max_listed: int | None = None) -> None:
        self.problems = list(problems)
        self.num_cases = num_cases
        listed = self.problems if max_listed is None else self.problems[:max_listed]
        message = f"{len(self.problems)} problem(s) found in {num_cases} case(s)"
        if listed:
            message += ": " + "; ".join(str(problem) for problem in listed)
            if len(listed) < len(self.problems):
                message += f" (and {len(self.problems) - len(listed)} more)"
        super().__init__(message, path=folder)
