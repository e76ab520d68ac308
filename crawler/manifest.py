"""OUT/manifest.jsonl (C8): one JSON line per finished request, appended run after run, written
only after the request's file is in place."""

from __future__ import annotations

import builtins
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .storage import Storage

MANIFEST = "manifest.jsonl"


def utc_now() -> str:
    """The time now in UTC, ISO 8601 to the millisecond: ``2026-01-31T12:00:00.123Z``."""
    now = time.time()
    second = int(now)
    return f"{_date_and_time(second)}.{int((now - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=2)
def _date_and_time(second: int) -> str:
    # Formatting is most of the cost of a timestamp, and this part changes once a second.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


@dataclass(slots=True)
class Record:
    """The manifest line of one finished request."""

    run: str
    job: str
    method: str
    url: str
    final_url: str | None
    status: int | None
    ok: bool
    path: str | None
    bytes: int | None
    sha256: str | None
    content_type: str | None
    charset: str | None
    elapsed_ms: float
    attempts: int
    error: dict[str, str] | None
    fetched_at: str
    key: str
    # Crawl mode (C14) only: link hops from the job's own URLs, and the page that linked here.
    depth: int | None = None
    referrer: str | None = None

    def to_line(self) -> builtins.bytes:
        data: dict[str, Any] = {
            "run": self.run,
            "job": self.job,
            "method": self.method,
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "ok": self.ok,
            "path": self.path,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "charset": self.charset,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "error": self.error,
            "fetched_at": self.fetched_at,
            "key": self.key,
        }
        if self.depth is not None:
            data["depth"] = self.depth
            data["referrer"] = self.referrer
        try:
            return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a lone surrogate from a header aiohttp decoded with surrogateescape
            return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
                "utf-8", "backslashreplace"
            )


class Manifest:
    """Appends records; knows its own size so the state can note how far it is committed.

    Lines are queued and written together, once per round of the event loop (``write``): one
    system call for all the requests that finished in that round instead of one each. A
    queued line's state row cannot be committed before it is written (the runner writes
    the queue before it seals a batch), so a crash in between costs a refetch, not a record."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        path: Path = storage.out / MANIFEST
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._queued: list[builtins.bytes] = []

    def append(self, record: Record) -> bool:
        """Queue the record's line; True when the queue was empty (the caller then arranges
        a ``write``)."""
        self._queued.append(record.to_line())
        return len(self._queued) == 1

    def write(self) -> None:
        """Append the queued lines in one write. Raises LocalError when the disk refuses."""
        if not self._queued:
            return
        data = b"".join(self._queued)
        self._queued.clear()
        self._storage.append_line(MANIFEST, data)
        self.offset += len(data)


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of a manifest file (for tests and reports)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
