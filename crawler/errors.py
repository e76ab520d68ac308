"""The exception hierarchy. A failed request is data (see outcome.py), not an exception here."""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped as ``repr`` would (line
    breaks and NUL as ``\\n``, ``\\x00``; separators, bidi controls and lone surrogates as
    ``\\u2028``), so a message stays one line, prints as UTF-8 and never drives the terminal.
    Spaces stay as they are."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c == " " or c.isprintable():
            out.append(c)
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


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
        """One line, whatever the file name, key or message holds (see ``one_line``)."""
        where = f"{one_line(self.path)}: " if self.path else ""
        return f"{one_line(self.file)}:{self.line}: {where}{one_line(self.message)}"


class ConfigError(CrawlerError, ValueError):
    """The job file or command line is invalid; nothing was fetched (exit 2)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class OutputBusyError(CrawlerError):
    """Another run holds the output folder's lock (exit 3)."""


class LocalError(CrawlerError, OSError):
    """A local problem stopped the run: disk full, folder not writable (exit 4)."""
