"""WARC records of one exchange (C16), built byte for byte in the layout warcio writes:
WARC/1.1 headers, ``sha1:`` base32 block and payload digests, ``application/http`` blocks,
each record its own gzip member. warc.py appends them to the files; this builds them.

warcio's writer cost 2-3x the CPU per exchange (a writer object, header objects, digests
through file-like copies, a new zlib stream per member), which made ``save: warc`` twice the
CPU of ``save: bytes``; it also percent-encodes header values that are not ASCII, where this
keeps the header bytes as they came. Members come from one long-lived deflate stream per
thread (``_Deflater``), and a payload that does not compress is stored in its member as is.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from .._version import __version__
from ..config.requestkeys import SECRET_HEADERS
from ..http.exchange import Exchange

_LEVEL = 6  # zlib's default: about 3x faster than 9, for a few percent more bytes
_MASK = b"(secret: not recorded)"
# The stored response's framing: chunked transfer coding is removed from the payload.
_HOP_BY_HOP = frozenset({b"transfer-encoding"})
# A payload stored decoded (warc_decompress) says so: no Content-Encoding, its own length.
_DECODED = frozenset({b"transfer-encoding", b"content-encoding", b"content-length"})

_RESPONSE_TYPE = b"application/http; msgtype=response"
_REQUEST_TYPE = b"application/http; msgtype=request"
_CRLF = b"\r\n"
_END = b"\r\n\r\n"


@dataclass(slots=True)
class Built:
    """One request's records, compressed: ``parts`` written in order make its members."""

    parts: list[bytes]
    size: int
    final_offset: int  # of the final response member, from the first byte of ``parts``
    final_length: int
    payload_bytes: int
    payload_sha256: str


# --- records -------------------------------------------------------------------------------


_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [bytes((_B32[n >> 5], _B32[n & 31])) for n in range(1024)]  # 10 bits -> 2 chars
_SHIFTS = range(150, -1, -10)


def _b32(digest: bytes) -> bytes:
    """``sha1:`` and a SHA-1 digest in base32, as WARC digests are written."""
    number = int.from_bytes(digest, "big")  # 160 bits: 16 pairs of base32 digits
    return b"sha1:" + b"".join([_B32_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


def _sha1(payload: bytes) -> bytes:
    return _b32(hashlib.sha1(payload).digest())


_EMPTY_SHA1 = _sha1(b"")
_second: tuple[int, bytes] = (-1, b"")  # the last whole second formatted (swapped whole)


def _warc_date(seconds: float) -> bytes:
    """WARC 1.1's date: UTC with microseconds (as warcio writes WARC/1.1 dates)."""
    global _second
    whole = int(seconds)
    cached = _second
    if cached[0] != whole:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
        cached = _second = (whole, text)
    return b"%s.%06dZ" % (cached[1], int((seconds - whole) * 1_000_000))


def _record_id() -> bytes:
    """A random (version 4) UUID URN, as warcio makes record ids."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    x = raw.hex().encode()
    return b"<urn:uuid:%s-%s-%s-%s-%s>" % (x[:8], x[8:12], x[12:16], x[16:20], x[20:])


# A gzip member is written here from deflate segments, each ended by a full flush (which
# closes its blocks on a byte boundary and forgets everything before it, so nothing refers
# back across segments or members): the gzip header zlib writes (no name, no time, Unix),
# the segments, an empty final block, then the CRC-32 and the size modulo 2**32.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
_FINAL_BLOCK = b"\x03\x00"  # a final fixed-Huffman block holding only its end code
_TRAILER = struct.Struct("<II")
_STORED = struct.Struct("<BHH")  # a stored block's header: not final, LEN, NLEN
_STORED_MAX = 0xFFFF
_STORED_END = _STORED.pack(0, 4, 4 ^ 0xFFFF) + b"\r\n\r\n"  # a record's closing CRLF CRLF
_U32 = 0xFFFFFFFF
# A payload that does not compress (an image, a compressed body, random bytes) is stored in
# its member as it is: deflating a few KiB of such bytes costs as much as deflating text and
# saves nothing. Known by its Content-Type, or else by a sample from its middle: text and
# markup use few distinct byte values, compressed and random bytes most of the 256.
_SAMPLE = 256
_INCOMPRESSIBLE_VALUES = 144  # of 256 random bytes, about 162 are distinct
_STORED_TYPES = re.compile(
    rb"\s*(image/(?!svg|x-icon|bmp|vnd\.microsoft)|video/|audio/(?!wav|x-wav)|font/woff"
    rb"|application/(zip|gzip|x-gzip|x-bzip2|x-xz|zstd|x-7z-compressed|x-rar))",
    re.IGNORECASE,
)


class _Deflater:
    """The long-lived raw deflate streams one thread makes members with. A new zlib
    compressor per member spent more setting up and freeing its window and tables (~50 us)
    than deflating a record of a few KiB."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)

    def member(self, head: bytes, payload: bytes, store: bool) -> bytes:
        """``head``, ``payload`` and CRLF CRLF as one gzip member; with ``store`` the payload
        goes in stored (uncompressed) blocks."""
        deflate = self._deflate
        crc = zlib.crc32(_END, zlib.crc32(payload, zlib.crc32(head)))
        size = len(head) + len(payload) + len(_END)
        out: list[bytes | memoryview] = [_GZIP_HEADER, deflate.compress(head)]
        if store:
            # Stored blocks start on a byte boundary; the full flush also makes sure nothing
            # deflated later refers back across them (zlib's window does not hold them).
            out.append(deflate.flush(zlib.Z_FULL_FLUSH))
            view = memoryview(payload)
            for start in range(0, len(view), _STORED_MAX):
                chunk = view[start : start + _STORED_MAX]
                out += (_STORED.pack(0, len(chunk), len(chunk) ^ 0xFFFF), chunk)
            out += (_STORED_END, _FINAL_BLOCK, _TRAILER.pack(crc, size & _U32))
        else:
            out += (
                deflate.compress(payload),
                deflate.compress(_END),
                deflate.flush(zlib.Z_FULL_FLUSH),
                _FINAL_BLOCK,
                _TRAILER.pack(crc, size & _U32),
            )
        return b"".join(out)


_deflaters = threading.local()  # one per thread: the event loop's, and the build threads'


def _deflater() -> _Deflater:
    deflater: _Deflater | None = getattr(_deflaters, "deflater", None)
    if deflater is None:
        deflater = _deflaters.deflater = _Deflater()
    return deflater


def _incompressible(payload: bytes) -> bool:
    if len(payload) < 4 * _SAMPLE:
        return False
    middle = len(payload) // 2
    return len(set(payload[middle : middle + _SAMPLE])) >= _INCOMPRESSIBLE_VALUES


def _record(
    kind: bytes,
    record_id: bytes,
    uri: bytes | None,
    date: bytes,
    content_type: bytes,
    block_head: bytes,
    payload: bytes,
    extra: bytes = b"",
    payload_digest: bool = True,
    store: bool | None = None,
) -> bytes:
    """One WARC record as its own gzip member: ``block_head`` (an HTTP message's head, or
    nothing) and ``payload`` make the block. ``extra`` holds further header lines. The
    payload is stored uncompressed with ``store``; None: when it does not compress."""
    block = hashlib.sha1(block_head)
    block.update(payload)
    length = len(block_head) + len(payload)
    if not payload_digest:
        digests = b""
    elif payload:
        digests = b"\r\nWARC-Payload-Digest: " + _sha1(payload)
    else:
        digests = b"\r\nWARC-Payload-Digest: " + _EMPTY_SHA1
    target = b"\r\nWARC-Target-URI: " + uri if uri is not None else b""
    head = b"WARC/1.1\r\nWARC-Type: %s\r\nWARC-Record-ID: %s%s\r\nWARC-Date: %s%s%s" % (
        kind,
        record_id,
        target,
        date,
        extra,
        digests,
    )
    head += b"\r\nWARC-Block-Digest: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        _b32(block.digest()),
        content_type,
        length,
    )
    deflater = _deflater()
    if store is None:
        store = _incompressible(payload)
    try:
        return deflater.member(head + block_head, payload, store)
    except BaseException:
        _deflaters.deflater = None  # its streams are in an unknown state: start anew
        raise


def _request_target(url: str) -> str:
    """The path and query of an absolute URL as aiohttp sends them (``str(URL)`` is encoded
    already), without parsing it again."""
    host = url.find("//") + 2
    ends = [i for i in (url.find("/", host), url.find("?", host)) if i >= 0]
    if not ends:
        return "/"
    target = url[min(ends) :].partition("#")[0]
    return target if target.startswith("/") else "/" + target


def _request_head(hop: Exchange, secret: frozenset[str]) -> bytes:
    """The request line and headers as aiohttp sent them (it encodes them as UTF-8), secret
    values masked."""
    lines = [f"{hop.method} {_request_target(hop.url)} HTTP/{hop.version}".encode()]
    for name, value in hop.request_headers.items() if hop.request_headers is not None else ():
        shown = _MASK if name.lower() in secret else value.encode()
        lines.append(name.encode() + b": " + shown)
    lines.append(_CRLF)
    return _CRLF.join(lines)


def _response_head(hop: Exchange, payload_size: int) -> bytes:
    """The status line and headers as received (bytes as they came, in order), without the
    chunked framing's header; decoded, without Content-Encoding and with its own length."""
    status = f"HTTP/{hop.version} {hop.status} {hop.reason}".rstrip().encode()
    drop = _DECODED if hop.decoded else _HOP_BY_HOP
    lines = [status]
    lines += [
        name + b": " + value for name, value in hop.response_headers if name.lower() not in drop
    ]
    if hop.decoded:
        lines.append(b"Content-Length: " + str(payload_size).encode())
    lines.append(_CRLF)
    return _CRLF.join(lines)


def _compressed(hop: Exchange) -> bool:
    """Whether the response's payload is compressed already: kept in its Content-Encoding,
    or of a type that is (most images, video and audio, archives)."""
    for name, value in hop.response_headers:
        folded = name.lower()
        if folded == b"content-encoding" and not hop.decoded:
            if value.strip().lower() not in (b"", b"identity"):
                return True
        elif folded == b"content-type" and _STORED_TYPES.match(value):
            return True
    return False


def build_exchange(
    exchanges: list[Exchange], secret: Iterable[str], final_payload: bytes | None = None
) -> Built:
    """The gzip members of one request's hops, a request then a response record per hop.
    ``final_payload`` is the last hop's body when it is not in its Exchange (spilled)."""
    secret_names = frozenset(name.lower() for name in secret) | SECRET_HEADERS
    parts: list[bytes] = []
    size = final_offset = final_length = 0
    payload = b""
    last = len(exchanges) - 1
    for number, hop in enumerate(exchanges):
        payload = final_payload if number == last and final_payload is not None else hop.payload
        uri = hop.url.encode()
        date = _warc_date(hop.started)
        response_id = _record_id()
        extra = b"\r\nWARC-Truncated: " + hop.truncated.encode() if hop.truncated else b""
        response = _record(
            b"response",
            response_id,
            uri,
            date,
            _RESPONSE_TYPE,
            _response_head(hop, len(payload)),
            payload,
            extra,
            store=True if _compressed(hop) else None,
        )
        request = _record(
            b"request",
            _record_id(),
            uri,
            date,
            _REQUEST_TYPE,
            _request_head(hop, secret_names),
            hop.request_body or b"",
            b"\r\nWARC-Concurrent-To: " + response_id,
            store=False,
        )
        parts.append(request)
        size += len(request)
        if number == last:
            final_offset, final_length = size, len(response)
        parts.append(response)
        size += len(response)
    digest = hashlib.sha256(payload).hexdigest()
    return Built(parts, size, final_offset, final_length, len(payload), digest)


def warcinfo_member(name: str, run: str, job_file: str, now: float) -> bytes:
    fields = {
        "software": f"crawler/{__version__}",
        "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        "isPartOf": run,
        "description": f"job file {job_file}",
    }
    block = "".join(f"{key}: {value}\r\n" for key, value in fields.items()).encode()
    return _record(
        b"warcinfo",
        _record_id(),
        None,
        _warc_date(now),
        b"application/warc-fields",
        b"",
        block,
        b"\r\nWARC-Filename: " + name.encode(),
        payload_digest=False,
        store=False,
    )


# --- files ---------------------------------------------------------------------------------
