"""`save: warc` (C16): each job's exchanges in gzipped WARC 1.1 files,
OUT/<job>/<job>-<run>-NNNNN.warc.gz, NNNNN from 00000 per run, a new file once the current one
passes ``MAX_FILE_BYTES``. Each file starts with a ``warcinfo`` record; each exchange adds, per
redirect hop, a ``request`` record (headers as sent, secret values masked as C3 says) and a
``response`` record (as received, chunked framing removed), each record its own gzip member so
readers can seek to it.

The records are built in warcrecords.py; this module owns the files: names, roll-over,
append order and resume. The tests read what it writes with warcio, FastWARC, cdxj-indexer
and pywb.

Crash safety: an exchange's members are appended with one write, in the order their offsets
were handed out (one writer thread, or inline when it is idle), and its manifest line (path,
warc_offset, warc_length) follows. A resumed run cuts each of its files back to the end of the
last exchange the manifest records (``resume``), so a request in flight at a crash leaves no
torn or orphan record, and its refetch is archived once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..http.exchange import Exchange
from .layout import Layout
from .manifest import iter_records
from .storage import local_error
from .warcrecords import Built, build_exchange, warcinfo_member

# A new file once the current one passes this (C16: 1 GiB). CRAWLER_WARC_MAX_BYTES lowers it
# (a test of roll-over cannot write a gigabyte).
MAX_FILE_BYTES = int(os.environ.get("CRAWLER_WARC_MAX_BYTES", 1 << 30))
# Exchanges up to this size are built on the event loop, larger ones in a thread; writes up to
# _WRITE_INLINE go to the file from the loop when the writer thread is idle (a thread hand-off
# costs more than writing a few KiB to the page cache, as the manifest's lines are written).
_BUILD_INLINE = 256 * 1024
_WRITE_INLINE = 64 * 1024


def file_name(job: str, run: str, number: int) -> str:
    return f"{job}-{run}-{number:05d}.warc.gz"


def _file_number(job: str, run: str, name: str) -> int | None:
    match = re.fullmatch(re.escape(f"{job}-{run}-") + r"(\d{5})\.warc\.gz", name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Archived:
    """Where an exchange went: the final response record's place, and its payload."""

    path: str  # relative to OUT
    offset: int
    length: int
    payload_bytes: int
    payload_sha256: str


class _JobFile:
    """The WARC file a job appends to now."""

    def __init__(self, out: Path, job: str, run: str, number: int) -> None:
        self.rel = f"{job}/{file_name(job, run, number)}"
        self.path = out / self.rel
        self.number = number
        self.fd = -1
        self.size = 0


class WarcArchive:
    """The WARC files of one run, one current file per job."""

    def __init__(self, out: Path, run: str, job_file: str) -> None:
        self.out = out
        self.run = run
        self.job_file = job_file
        self._files: dict[str, _JobFile] = {}
        # One thread, so appends reach the files in the order their offsets were given; an
        # append goes there unless the thread is idle (the last job it was given is done).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="crawler-warc")
        self._last: Future[None] | None = None

    def resume(self, job: str, ends: dict[str, int]) -> None:
        """Continue ``job``'s files of this run: each cut back to the end of the last
        exchange the manifest records (``ends``: path relative to OUT -> end offset); a file
        holding none of them is removed (the request in flight is fetched again)."""
        folder = self.out / job
        numbers = sorted(
            n
            for entry in (folder.iterdir() if folder.is_dir() else ())
            if (n := _file_number(job, self.run, entry.name)) is not None
        )
        for n in numbers:
            rel = f"{job}/{file_name(job, self.run, n)}"
            path = self.out / rel
            try:
                if rel in ends:
                    os.truncate(path, ends[rel])
                else:
                    path.unlink()
            except OSError as exc:
                raise local_error(exc, path) from exc
        kept = [n for n in numbers if f"{job}/{file_name(job, self.run, n)}" in ends]
        if kept:
            current = _JobFile(self.out, job, self.run, kept[-1])
            self._open(current, new=False)
            self._files[job] = current

    def _open(self, file: _JobFile, new: bool) -> None:
        try:
            file.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_EXCL if new else 0)
            file.fd = os.open(file.path, flags, 0o644)
            file.size = os.fstat(file.fd).st_size
        except OSError as exc:
            raise local_error(exc, file.path) from exc

    def _idle(self) -> bool:
        return self._last is None or self._last.done()

    def _file_for(self, job: str) -> tuple[_JobFile, bytes]:
        """The file the next exchange of ``job`` goes to, and the warcinfo member to write
        first when that file is new."""
        current = self._files.get(job)
        if current is not None and current.size <= MAX_FILE_BYTES:
            return current, b""
        number = 0 if current is None else current.number + 1
        if current is not None:
            # Closed after the writes still queued for it: closed at once, its descriptor
            # number could go to the new file, and those writes with it.
            fd, current.fd = current.fd, -1
            if self._idle():
                _close_quietly(fd)
            else:
                self._last = self._writer.submit(_close_quietly, fd)
        new = _JobFile(self.out, job, self.run, number)
        with contextlib.suppress(FileNotFoundError):
            new.path.unlink()  # left by a crash before its first exchange was recorded
        self._open(new, new=True)
        self._files[job] = new
        now = datetime.now(UTC).timestamp()
        return new, warcinfo_member(new.path.name, self.run, self.job_file, now)

    async def append(
        self,
        job: str,
        exchanges: list[Exchange],
        secret: Iterable[str],
        spilled: Path | None = None,
    ) -> Archived:
        """Archive one request's exchanges; returns where its final response went.
        ``spilled`` is the attempt's spill file, holding the final body when the last
        exchange says so (``Exchange.spilled``)."""
        if not exchanges[-1].spilled:
            spilled = None  # a compressed body stored as received is in the exchange
        if spilled is not None or sum(len(e.payload) for e in exchanges) > _BUILD_INLINE:
            built = await asyncio.to_thread(_build_reading, exchanges, secret, spilled)
        else:
            built = build_exchange(exchanges, secret)
        file, head = self._file_for(job)
        offset = file.size + len(head)
        file.size += len(head) + built.size
        parts = [head, *built.parts] if head else built.parts
        try:
            if self._idle() and len(head) + built.size <= _WRITE_INLINE:
                _write_parts(file.fd, parts)
            else:
                self._last = self._writer.submit(_write_parts, file.fd, parts)
                # Shielded: were this request cancelled (a second Ctrl-C), the write queued
                # must still happen, or every later offset in the file would be wrong.
                await asyncio.shield(asyncio.wrap_future(self._last))
        except OSError as exc:
            raise local_error(exc, file.path) from exc
        return Archived(
            file.rel,
            offset + built.final_offset,
            built.final_length,
            built.payload_bytes,
            built.payload_sha256,
        )

    def _close(self, file: _JobFile) -> None:
        if file.fd >= 0:
            _close_quietly(file.fd)
            file.fd = -1

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for file in self._files.values():
            self._close(file)
        self._files.clear()


def _build_reading(exchanges: list[Exchange], secret: Iterable[str], spilled: Path | None) -> Built:
    final = spilled.read_bytes() if spilled is not None else None
    return build_exchange(exchanges, secret, final)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _write_parts(fd: int, parts: list[bytes]) -> None:
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def committed_ends(records: Iterable[dict[str, object]]) -> dict[str, int]:
    """Per WARC file (relative to OUT), where the last recorded exchange ends: its final
    response record is the last member an exchange writes."""
    ends: dict[str, int] = {}
    for record in records:
        offset, length, path = (
            record.get("warc_offset"),
            record.get("warc_length"),
            record.get("path"),
        )
        if isinstance(offset, int) and isinstance(length, int) and isinstance(path, str):
            ends[path] = max(ends.get(path, 0), offset + length)
    return ends


def open_archive(
    out: Path, run: str, job_file: str, jobs: list[str], continued: bool
) -> WarcArchive | None:
    """The run's WARC files, when ``jobs`` (those saving WARC) is not empty; a continued run
    goes on with its own, cut back to the last exchange its manifest records."""
    if not jobs:
        return None
    archive = WarcArchive(out, run, job_file)
    if continued:
        manifest = Layout(out).manifest
        ends = committed_ends(iter_records(manifest, run) if manifest.exists() else ())
        for job in jobs:
            archive.resume(job, ends)
    return archive
