"""`save: warc` (C16): each job's exchanges in gzipped WARC 1.1 files,
OUT/<job>/<job>-<run>-NNNNN.warc.gz, NNNNN from 00000 per run, a new file once the current one
passes ``MAX_FILE_BYTES``. Each file starts with a ``warcinfo`` record; each exchange adds, per
redirect hop, a ``request`` record (headers as sent, secret values masked as C3 says) and a
``response`` record (as received, chunked framing removed), each record its own gzip member so
readers can seek to it. warcio builds the records (block and payload digests included);
crawler compresses each member itself, at a faster level than warcio's 9.

Crash safety: an exchange's members are appended with one write, in the order their offsets
were handed out, and its manifest line (path, warc_offset, warc_length) follows. A resumed
run cuts each of its files back to the end of the last exchange the manifest records
(``resume``), so a request in flight at a crash leaves no torn or orphan record, and its
refetch is archived once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from .._version import __version__
from ..http.exchange import Exchange
from .storage import local_error

# A new file once the current one passes this (C16: 1 GiB). CRAWLER_WARC_MAX_BYTES lowers it
# (a test of roll-over cannot write a gigabyte).
MAX_FILE_BYTES = int(os.environ.get("CRAWLER_WARC_MAX_BYTES", 1 << 30))
_LEVEL = 6  # zlib's default: about 3x faster than 9 here, for a few percent more bytes
_MASK = "(secret: not recorded)"
# Headers never kept as sent (C3), besides the job's own ${...}-filled ones.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# The stored response's framing: chunked transfer coding is removed from the payload.
_HOP_BY_HOP = frozenset({"transfer-encoding"})


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


def _member(data: bytes) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _record_bytes(writer: WARCWriter, buffer: io.BytesIO, record: object) -> bytes:
    buffer.seek(0)
    buffer.truncate()
    writer.write_record(record)
    return buffer.getvalue()


def _request_target(url: str) -> str:
    from yarl import URL

    parsed = URL(url)
    return parsed.raw_path_qs or "/"


def build_exchange(
    exchanges: list[Exchange], secret: Iterable[str], final_payload: bytes | None = None
) -> tuple[bytes, int, int, int, str]:
    """The gzip members of one request's hops: (data, offset of the final response member
    in it, its length, the final payload's size, its sha256). ``final_payload`` is the last
    hop's body when it is not in its Exchange (it was spilled to disk)."""
    secret_names = {name.lower() for name in secret} | SECRET_HEADERS
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False, warc_version="1.1")
    parts: list[bytes] = []
    size = 0
    final_offset = final_length = 0
    payload = b""
    for number, hop in enumerate(exchanges):
        last = number == len(exchanges) - 1
        payload = final_payload if last and final_payload is not None else hop.payload
        response_headers = []
        for raw_name, raw_value in hop.response_headers:
            name = raw_name.decode("latin-1")
            folded = name.lower()
            if folded in _HOP_BY_HOP:
                continue
            if hop.decoded and folded in ("content-encoding", "content-length"):
                continue
            response_headers.append((name, raw_value.decode("latin-1")))
        if hop.decoded:
            response_headers.append(("Content-Length", str(len(payload))))
        http_response = StatusAndHeaders(
            f"{hop.status} {hop.reason}".strip(), response_headers, protocol=f"HTTP/{hop.version}"
        )
        response = writer.create_warc_record(
            hop.url,
            "response",
            payload=io.BytesIO(payload),
            length=len(payload),
            http_headers=http_response,
        )
        sent = hop.request_headers.items() if hop.request_headers is not None else ()
        request_headers = [
            (name, _MASK if name.lower() in secret_names else value) for name, value in sent
        ]
        http_request = StatusAndHeaders(
            f"{hop.method} {_request_target(hop.url)} HTTP/{hop.version}",
            request_headers,
            is_http_request=True,
        )
        body = hop.request_body or b""
        request = writer.create_warc_record(
            hop.url,
            "request",
            payload=io.BytesIO(body),
            length=len(body),
            http_headers=http_request,
            warc_headers_dict={
                "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID"),
                "WARC-Date": response.rec_headers.get_header("WARC-Date"),
            },
        )
        for kind, record in (("request", request), ("response", response)):
            member = _member(_record_bytes(writer, buffer, record))
            if last and kind == "response":
                final_offset, final_length = size, len(member)
            parts.append(member)
            size += len(member)
    digest = hashlib.sha256(payload).hexdigest()
    return b"".join(parts), final_offset, final_length, len(payload), digest


def warcinfo_member(name: str, run: str, job_file: str) -> bytes:
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False, warc_version="1.1")
    record = writer.create_warcinfo_record(
        name,
        {
            "software": f"crawler/{__version__}",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "isPartOf": run,
            "description": f"job file {job_file}",
        },
    )
    return _member(_record_bytes(writer, buffer, record))


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
        # One thread, so appends reach the files in the order their offsets were given.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="crawler-warc")

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

    def _file_for(self, job: str) -> tuple[_JobFile, bytes]:
        """The file the next exchange of ``job`` goes to, and the warcinfo member to write
        first when that file is new."""
        current = self._files.get(job)
        if current is not None and current.size <= MAX_FILE_BYTES:
            return current, b""
        number = 0 if current is None else current.number + 1
        if current is not None:
            self._close(current)
        new = _JobFile(self.out, job, self.run, number)
        with contextlib.suppress(FileNotFoundError):
            new.path.unlink()  # left by a crash before its first exchange was recorded
        self._open(new, new=True)
        self._files[job] = new
        return new, warcinfo_member(new.path.name, self.run, self.job_file)

    async def append(
        self,
        job: str,
        exchanges: list[Exchange],
        secret: Iterable[str],
        spilled: Path | None = None,
    ) -> Archived:
        """Archive one request's exchanges; returns where its final response went."""
        loop = asyncio.get_running_loop()
        large = spilled is not None or sum(len(e.payload) for e in exchanges) > 256 * 1024
        final = await asyncio.to_thread(spilled.read_bytes) if spilled is not None else None
        if large:
            built = await asyncio.to_thread(build_exchange, exchanges, secret, final)
        else:
            built = build_exchange(exchanges, secret, final)
        data, final_offset, final_length, payload_bytes, digest = built
        file, head = self._file_for(job)
        offset = file.size + len(head)
        file.size += len(head) + len(data)
        try:
            await loop.run_in_executor(self._writer, _write_all, file.fd, head + data)
        except OSError as exc:
            raise local_error(exc, file.path) from exc
        return Archived(file.rel, offset + final_offset, final_length, payload_bytes, digest)

    def _close(self, file: _JobFile) -> None:
        if file.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(file.fd)
            file.fd = -1

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for file in self._files.values():
            self._close(file)
        self._files.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
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
