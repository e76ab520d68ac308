"""The exception hierarchy. A failed request is data (see outcome.py), not an exception here."""

from __future__ import annotations

from dataclasses import dataclass


class CrawlerError(Exception):
    """Base class of every error crawler raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a job file, printed as ``FILE:LINE: key.path: message``."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class ConfigError(CrawlerError, ValueError):
    """The job file or command line is invalid; nothing was fetched (exit 2)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class OutputBusyError(CrawlerError):
    """Another run holds the output folder's lock (exit 3)."""


class LocalError(CrawlerError, OSError):
    """A local problem stopped the run: disk full, folder not writable (exit 4)."""
