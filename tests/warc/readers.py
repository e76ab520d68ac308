"""Reading WARC files back the way users will: warcio (Webrecorder's library, also what pywb
reads with), FastWARC (an independent C++ reader) and the cdxj-indexer command. Nothing here
comes from crawler itself."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from fastwarc.warc import ArchiveIterator as FastIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator

BIN = Path(sys.executable).parent


@dataclass
class Rec:
    """One record as warcio reads it, with its place in the file."""

    type: str
    headers: dict[str, str]  # WARC headers (each name once in crawler's records)
    status_line: str | None  # the HTTP request or status line
    http_headers: list[tuple[str, str]]  # as stored, in order
    payload: bytes  # the HTTP payload as stored (raw_stream: nothing decoded)
    offset: int
    length: int

    @property
    def uri(self) -> str | None:
        return self.headers.get("WARC-Target-URI")

    @property
    def id(self) -> str:
        return self.headers["WARC-Record-ID"]

    def http(self, name: str) -> list[str]:
        return [v for k, v in self.http_headers if k.lower() == name.lower()]


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def read_warcio(path: Path) -> list[Rec]:
    """Every record of ``path``, read to the file's end; warcio checks both digests of each
    record as it reads (check_digests="raise": a mismatch is an exception)."""
    records = []
    with path.open("rb") as fh:
        iterator = ArchiveIterator(fh, check_digests="raise")
        for record in iterator:
            http = record.http_headers
            payload = record.raw_stream.read()
            iterator.read_to_end(record)
            records.append(
                Rec(
                    type=record.rec_type,
                    headers=dict(record.rec_headers.headers),
                    status_line=f"{http.protocol} {http.statusline}" if http else None,
                    http_headers=list(http.headers) if http is not None else [],
                    payload=payload,
                    offset=iterator.get_record_offset(),
                    length=iterator.get_record_length(),
                )
            )
    return records


def record_at(path: Path, offset: int, length: int) -> Rec:
    """The one record at ``offset`` (``length`` bytes: one gzip member), read without the rest
    of the file: what a user does with a manifest line's warc_offset and warc_length."""
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    assert len(data) == length
    tmp = io.BytesIO(data)
    records = []
    iterator = ArchiveIterator(tmp, check_digests="raise")
    for record in iterator:
        http = record.http_headers
        payload = record.raw_stream.read()
        iterator.read_to_end(record)
        records.append(
            Rec(
                type=record.rec_type,
                headers=dict(record.rec_headers.headers),
                status_line=f"{http.protocol} {http.statusline}" if http else None,
                http_headers=list(http.headers) if http is not None else [],
                payload=payload,
                offset=offset,
                length=iterator.get_record_length(),
            )
        )
    assert len(records) == 1, f"{len(records)} records in one member"
    assert records[0].length == length
    return records[0]


@dataclass
class Member:
    """One gzip member of a file, parsed by hand (no WARC library): its place, its WARC
    headers, its block, and the HTTP payload inside the block."""

    offset: int
    length: int
    headers: dict[str, str]
    block: bytes

    @property
    def payload(self) -> bytes:
        if not self.headers.get("Content-Type", "").startswith("application/http"):
            return self.block
        return self.block.split(b"\r\n\r\n", 1)[1]


def members(path: Path) -> list[Member]:
    """Split ``path`` into its gzip members and check that each holds exactly one whole
    record: WARC/1.1 headers, a block of Content-Length bytes, then CRLF CRLF."""
    data = path.read_bytes()
    found = []
    offset = 0
    while offset < len(data):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = inflate.decompress(data[offset:])
        assert inflate.eof, f"{path.name}: the member at {offset} is cut short"
        length = len(data) - offset - len(inflate.unused_data)
        head, rest = text.split(b"\r\n\r\n", 1)
        lines = head.decode("utf-8").split("\r\n")
        assert lines[0] == "WARC/1.1", lines[0]
        headers = dict(line.split(": ", 1) for line in lines[1:])
        size = int(headers["Content-Length"])
        assert rest[size:] == b"\r\n\r\n", f"{path.name}: not one record at {offset}"
        found.append(Member(offset, length, headers, rest[:size]))
        offset += length
    return found


def decompressed(path: Path) -> bytes:
    """The whole file as plain WARC text (every gzip member)."""
    return gzip.decompress(path.read_bytes())


@dataclass
class FastRec:
    type: str
    uri: str | None
    record_id: str
    block_ok: bool
    payload_ok: bool
    offset: int


_TYPES = {
    "warcinfo": WarcRecordType.warcinfo,
    "request": WarcRecordType.request,
    "response": WarcRecordType.response,
}


def read_fastwarc(path: Path) -> list[FastRec]:
    """Every record as FastWARC reads it, with its own check of both digests."""
    found = []
    with path.open("rb") as fh:
        for record in FastIterator(fh, parse_http=False, auto_decode="none"):
            kind = record.record_type
            names = [n for n in ("warcinfo", "request", "response") if kind == _TYPES[n]]
            name = names[0] if names else str(kind)
            offset = record.stream_pos
            block_ok = record.verify_block_digest(consume=False)
            payload_ok = True
            if name in ("request", "response"):
                record.parse_http()
                payload_ok = record.verify_payload_digest(consume=True)
            found.append(
                FastRec(
                    name,
                    record.headers.get("WARC-Target-URI"),
                    record.record_id,
                    block_ok,
                    payload_ok,
                    offset,
                )
            )
    return found


def cdxj(paths: list[Path]) -> list[tuple[str, str, dict[str, str]]]:
    """cdxj-indexer's index of ``paths``: (SURT key, timestamp, fields) per indexed record.
    The command exits non-zero (and this fails) on a file it cannot read."""
    done = subprocess.run(
        [str(BIN / "cdxj-indexer"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = []
    for line in done.stdout.splitlines():
        key, stamp, fields = line.split(" ", 2)
        lines.append((key, stamp, json.loads(fields)))
    return lines
