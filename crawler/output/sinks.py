"""Save modes (C5): how a successful response becomes what lands on disk. One ``Sink`` per
``save`` value, registered in ``SINKS``; a new save mode is one class here and one row there.

A sink decides the bytes and the extension; the ``Writer`` (results.py) picks the file name
and writes atomically. A body that cannot be decoded or parsed is kept raw and reported,
never dropped (C7)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..http import charset
from ..outcome import Kind
from ..tasks import naming

if TYPE_CHECKING:
    from ..http.fetch import Attempt
    from ..tasks.expand import FetchTask

_T = TypeVar("_T")
# Bodies up to this size are decoded and parsed on the event loop; larger ones in a thread.
_INLINE_BYTES = 64 * 1024


@dataclass(slots=True)
class Saved:
    """Where a result went, as the manifest reports it."""

    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    charset: str | None = None
    kind: str | None = None
    message: str | None = None
    # save: warc: the final response record's place in the WARC file ``path`` (C16).
    warc_offset: int | None = None
    warc_length: int | None = None


class Writer(Protocol):
    """What a sink may do with the output folder."""

    async def write(
        self, task: FetchTask, ext: str, data: bytes, attempt: Attempt | None = None
    ) -> Saved:
        """Save ``data`` (or the attempt's spilled body) as the task's file, atomically."""

    async def keep_raw(self, task: FetchTask, body: bytes, kind: str, message: str) -> Saved:
        """Save the body as received, as a failure of ``kind`` (C7)."""

    async def append(self, rel: str, line: bytes) -> None:
        """Append whole lines to OUT/rel."""

    async def archive(self, task: FetchTask, attempt: Attempt) -> Saved:
        """Append the attempt's exchanges to the job's WARC file (C16)."""


class Sink(Protocol):
    def extension(self, content_type: str | None) -> str:
        """The file extension (with its dot) for a response of this Content-Type."""

    async def save(
        self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes
    ) -> Saved: ...

    # Whether the body must be whole in memory (a spilled one is read back first).
    needs_body: bool


async def _off_loop(body: bytes, func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)``; in a worker thread when ``body`` is large enough that decoding or
    parsing it would stall every other request of the run."""
    if len(body) > _INLINE_BYTES:
        return await asyncio.to_thread(func, *args)
    return func(*args)


class BytesSink:
    """``save: bytes``: the body exactly as received (Content-Encoding undone)."""

    needs_body = False

    def extension(self, content_type: str | None) -> str:
        return naming.extension("bytes", content_type)

    async def save(self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes) -> Saved:
        return await writer.write(task, self.extension(attempt.content_type), body, attempt)


def _to_utf8(body: bytes, content_type: str | None, forced: str | None) -> tuple[bytes, str]:
    text, codec = charset.decode(body, content_type, forced)
    if codec != "utf-8":
        # Transcoded: a page that names its old charset (<meta charset>, an XML declaration)
        # would be misread from the UTF-8 file, so its declaration says UTF-8 now. The
        # manifest still records ``codec``, the one the body was decoded with.
        text = charset.declare_utf8(text, content_type)
    # A forced codec such as unicode_escape can yield lone surrogates, which UTF-8 refuses.
    return text.encode(), codec


class TextSink:
    """``save: text``: decoded (codec order in charset.py), written as UTF-8; a transcoded
    HTML or XML body declares UTF-8 (charset.declare_utf8)."""

    needs_body = True

    def extension(self, content_type: str | None) -> str:
        return naming.extension("text", content_type)

    async def save(self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes) -> Saved:
        content_type = attempt.content_type
        try:
            data, codec = await _off_loop(body, _to_utf8, body, content_type, task.job.encoding)
        except (ValueError, LookupError) as exc:  # UnicodeError is a ValueError
            return await writer.keep_raw(task, body, Kind.DECODE, str(exc))
        saved = await writer.write(task, self.extension(content_type), data)
        saved.charset = codec
        return saved


def _is_utf8_json(body: bytes) -> bool:
    # json.loads accepts UTF-8, -16 and -32 (RFC 8259 8.1 allows only UTF-8 on the wire, but
    # servers differ); only a body with a NUL in its first bytes or a BOM is not plain UTF-8.
    return not body.startswith((b"\xef\xbb\xbf", b"\xff", b"\xfe")) and b"\x00" not in body[:4]


def _parse_json(body: bytes, content_type: str | None) -> tuple[Any, bool]:
    """(parsed value, whether ``body`` is UTF-8 as it stands). Raises ValueError when the body
    is not JSON. A body in a legacy charset its Content-Type names (``application/json;
    charset=iso-8859-1``) is read in that charset, as browsers and HTTP libraries do."""
    try:
        return json.loads(body), _is_utf8_json(body)
    except UnicodeDecodeError:
        declared = charset.header_charset(content_type)
        if declared is None or declared.startswith("utf"):
            raise
    return json.loads(body.decode(declared)), False


def _json_bytes(value: Any, separators: tuple[str, str] | None = None) -> bytes:
    """``value`` as UTF-8 JSON. A lone surrogate (a valid ``\\ud800`` escape in JSON) has no
    UTF-8 form, so such a value keeps its non-ASCII characters escaped instead."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=separators).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=separators).encode()


async def _parsed(
    writer: Writer, task: FetchTask, attempt: Attempt, body: bytes
) -> tuple[Any, bool] | Saved:
    """The parsed body, or what was saved when it is not JSON."""
    try:
        return await _off_loop(body, _parse_json, body, attempt.content_type)
    except (ValueError, LookupError, RecursionError) as exc:
        return await writer.keep_raw(task, body, Kind.INVALID_JSON, f"body is not JSON: {exc}")


class JsonSink:
    """``save: json``: the parsed body written back as UTF-8 JSON (as received when it is
    UTF-8 already)."""

    needs_body = True

    def extension(self, content_type: str | None) -> str:
        return ".json"

    async def save(self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes) -> Saved:
        parsed = await _parsed(writer, task, attempt, body)
        if isinstance(parsed, Saved):
            return parsed
        value, as_is = parsed
        if not as_is:
            body = await _off_loop(body, _json_bytes, value)
        saved = await writer.write(task, ".json", body)
        saved.charset = "utf-8"
        return saved


class JsonLinesSink:
    """``save: jsonl``: one line per request appended to OUT/<job>.jsonl; no file of its own."""

    needs_body = True

    def extension(self, content_type: str | None) -> str:
        return ".json"  # only for a body kept raw: the line itself goes to <job>.jsonl

    async def save(self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes) -> Saved:
        parsed = await _parsed(writer, task, attempt, body)
        if isinstance(parsed, Saved):
            return parsed
        line = {"url": task.url_text, "status": attempt.status, "data": parsed[0]}
        data = await _off_loop(body, _json_bytes, line, (",", ":")) + b"\n"
        rel = f"{task.job.name}.jsonl"
        await writer.append(rel, data)
        return Saved(path=rel, charset="utf-8")


class WarcSink:
    """``save: warc``: the exchanges, request and response per redirect hop, appended to the
    job's WARC file (output/warc.py); the body is stored as received unless the job sets
    ``warc_decompress``."""

    needs_body = False

    def extension(self, content_type: str | None) -> str:
        return ".warc.gz"

    async def save(self, writer: Writer, task: FetchTask, attempt: Attempt, body: bytes) -> Saved:
        return await writer.archive(task, attempt)


SINKS: dict[str, Sink] = {
    "text": TextSink(),
    "bytes": BytesSink(),
    "json": JsonSink(),
    "jsonl": JsonLinesSink(),
    "warc": WarcSink(),
}
