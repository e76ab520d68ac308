"""Logging set-up for the command line (C13): text or one JSON object per line, to stderr;
while a live progress display runs, log lines go through its console so they print above it
instead of through it."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich loads only with the live display: cron runs skip its import time
    from rich.console import Console

LOGGER = "crawler"


def _utc(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers: time, level, event, and the request's
    fields when the record carries them (``extra=``): run, job, url, status, kind (the error
    kind), error (its message) and attempt (attempts made)."""

    _EXTRAS = ("run", "job", "url", "status", "kind", "error", "attempt")

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": _utc(record.created, record.msecs),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key in self._EXTRAS:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def summary_json(line: str, summary: dict[str, Any]) -> str:
    """The end-of-run summary as a JSON log line: the summary line as ``event``, the saved
    summary's keys under ``summary``."""
    now = time.time()
    data = {
        "time": _utc(now, (now % 1) * 1000),
        "level": "info",
        "event": line,
        "logger": LOGGER,
        "summary": summary,
    }
    return json.dumps(data, ensure_ascii=False)


def setup_logging(log_format: str, quiet: bool) -> None:
    """Warnings and errors by default; with ``quiet`` errors only. Always to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("crawler: %(levelname)s: %(message)s"))
    root = logging.getLogger(LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.WARNING)
    root.propagate = False


_LEVEL_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}


class ConsoleHandler(logging.Handler):
    """Prints each record as one line through a rich console, which puts it above a live
    display. Never wrapped by rich: a long URL stays on one (terminal-wrapped) line."""

    def __init__(self, console: Console, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.console = console
        self.setFormatter(formatter)
        self._styled = not isinstance(formatter, JsonFormatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from rich.text import Text

            style = _LEVEL_STYLES.get(record.levelno, "") if self._styled else ""
            # Text, not a str: a URL with [brackets] is not console markup.
            self.console.print(Text(self.format(record), style=style), soft_wrap=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def routed_through(console: Console) -> Iterator[None]:
    """Within the block, crawler's log lines print through ``console`` (same format and
    level); the handlers are put back after it."""
    logger = logging.getLogger(LOGGER)
    saved = logger.handlers[:]
    if not saved:
        yield
        return
    logger.handlers[:] = [ConsoleHandler(console, saved[0].formatter)]
    try:
        yield
    finally:
        logger.handlers[:] = saved
