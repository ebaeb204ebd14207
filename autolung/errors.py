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
