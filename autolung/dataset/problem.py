"""One problem found in a dataset: the file it concerns and what is wrong."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """A problem with one file (or the dataset folder) that the user must fix.

    Attributes:
        path: the file or folder concerned.
        message: what is wrong, in a few words.
    """

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
