"""OUT/manifest.jsonl (C8): one JSON line per finished request, appended run after run, written
only after the request's file is in place."""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import os
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..state.base import DoneRow, RunStore
from .layout import MANIFEST
from .storage import Storage

__all__ = [
    "MANIFEST",
    "Manifest",
    "Record",
    "iter_records",
    "last_run",
    "replay_into",
    "replay_tail",
    "utc_now",
]


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
    # The response's headers (HEAD, OPTIONS and jobs with record_headers: true; C8, C17).
    headers: dict[str, str] | None = None
    # Time spent in attempts: elapsed_ms without the waits before retries (what latency
    # figures measure).
    fetch_ms: float | None = None
    # save: warc: the final response record's offset and length in the WARC file ``path``.
    warc_offset: int | None = None
    warc_length: int | None = None

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
            "fetch_ms": self.fetch_ms,
        }
        if self.depth is not None:
            data["depth"] = self.depth
            data["referrer"] = self.referrer
        if self.headers is not None:
            data["headers"] = self.headers
        if self.warc_offset is not None:
            data["warc_offset"] = self.warc_offset
            data["warc_length"] = self.warc_length
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


def iter_records(
    path: str | os.PathLike[str], run: str | Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The records of a manifest file (of ``run`` only, or of the runs given, when given) one
    by one, skipping a torn or non-JSON line (a crash mid-write); memory stays flat however
    long the file."""
    runs = {run} if isinstance(run, str) else set(run) if run is not None else None
    # Lines are written with "run" first and no spaces, so most lines of other runs are
    # skipped without parsing them.
    prefixes = tuple(
        ('{"run":' + json.dumps(r, ensure_ascii=False) + ",").encode() for r in runs or ()
    )
    with open(path, "rb") as handle:
        for raw in handle:
            if prefixes and raw.startswith(b'{"run":') and not raw.startswith(prefixes):
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and (runs is None or record.get("run") in runs):
                yield record


def last_run(path: str | os.PathLike[str]) -> str | None:
    """The run of the manifest's last whole line, reading only its last 64 KiB."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - 65536))
        for raw in reversed(handle.read().splitlines()):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("run"):
                return str(record["run"])
    return None


def file_matches(out: Path, record: dict[str, Any]) -> bool:
    """Whether the file a manifest line names holds what the line says."""
    path, size, digest = record.get("path"), record.get("bytes"), record.get("sha256")
    if not path or digest is None:
        return True  # nothing saved, or a jsonl line: nothing to check
    file = out / str(path)
    offset, length = record.get("warc_offset"), record.get("warc_length")
    if isinstance(offset, int) and isinstance(length, int):
        # A WARC file: the exchange's records must be there, whole.
        try:
            return file.stat().st_size >= offset + length
        except OSError:
            return False
    try:
        if file.stat().st_size != size:
            return False
        with file.open("rb") as body:
            return bool(hashlib.file_digest(body, "sha256").hexdigest() == digest)
    except OSError:
        return False


def replay_tail(path: Path, offset: int, run_id: str) -> tuple[list[dict[str, Any]], int]:
    """After a crash: the records of run ``run_id`` written past ``offset`` (the last state
    commit) whose files are there with the size and sha256 they name, and the manifest's
    good length. A line can outlive its file's data after a power loss, so the file is
    checked. The manifest is cut at the first line that is torn or not JSON (a crash
    mid-write, or zeros after a power loss)."""
    if not path.exists():
        return [], offset
    records: list[dict[str, Any]] = []
    with path.open("rb+") as handle:
        handle.seek(offset)
        good_end = offset
        for raw in handle:
            try:
                record = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                record = None
            if not isinstance(record, dict):
                break
            good_end += len(raw)
            if record.get("run") != run_id or "key" not in record:
                continue
            if file_matches(path.parent, record):
                records.append(record)
        handle.truncate(good_end)
    return records, good_end


def replay_into(state: RunStore, manifest: Path) -> int:
    """After a crash: the current run's lines written past its last state commit, replayed
    into the state (``replay_tail`` checks their files) and committed; returns how many."""
    records, good_end = replay_tail(manifest, state.committed_manifest_offset(), state.run_id)
    for record in records:
        state.add_done(
            DoneRow(
                record["key"],
                bool(record["ok"]),
                (record.get("error") or {}).get("kind"),
                record.get("status"),
                record.get("bytes"),
                int(record.get("attempts", 1) or 0),
            )
        )
    state.flush(good_end)
    return len(records)
