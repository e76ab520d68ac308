"""Turn a finished response into what lands on disk (C5, C6, C7): decode text, check JSON, pick
the file name, and hand the bytes to storage. A body that cannot be decoded or parsed is kept
raw and reported, never dropped."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import charset, naming
from .errors import LocalError
from .expand import FetchTask
from .fetch import Attempt
from .state import RunState, Validators
from .storage import Storage, WriteBatcher

log = logging.getLogger(__name__)

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


def _is_utf8_json(body: bytes) -> bool:
    # json.loads accepts UTF-8, -16 and -32 (RFC 8259 8.1 allows only UTF-8 on the wire, but
    # servers differ); only a body with a NUL in its first bytes or a BOM is not plain UTF-8.
    return not body.startswith((b"\xef\xbb\xbf", b"\xff", b"\xfe")) and b"\x00" not in body[:4]


async def _off_loop(body: bytes, func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)``; in a worker thread when ``body`` is large enough that decoding or
    parsing it would stall every other request of the run."""
    if len(body) > _INLINE_BYTES:
        return await asyncio.to_thread(func, *args)
    return func(*args)


def _to_utf8(body: bytes, content_type: str | None, forced: str | None) -> tuple[bytes, str]:
    text, codec = charset.decode(body, content_type, forced)
    # A forced codec such as unicode_escape can yield lone surrogates, which UTF-8 refuses.
    return text.encode(), codec


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


class ResultWriter:
    """Saves results of one run into its output folder."""

    def __init__(self, storage: Storage, state: RunState) -> None:
        self.storage = storage
        self.state = state
        self._batcher = WriteBatcher(storage)

    def file_name(self, task: FetchTask, ext: str) -> str:
        """The path inside the job folder, unique within the job ignoring case (C6)."""
        job = task.job
        default = naming.default_name(task.url, task.key, ext)
        if not job.filename:
            return default  # the request hash in it makes it unique already
        name = naming.render_template(job.filename, task.url, task.key, task.index, ext)
        if not name:
            return default
        if not self.state.claim_name(job.name, name, task.key):
            name = naming.with_hash(name, task.key)
            if not self.state.claim_name(job.name, name, task.key):
                return default
        return name

    async def save(self, task: FetchTask, attempt: Attempt) -> Saved:
        job = task.job
        if job.method == "HEAD":
            return Saved(bytes=0)
        content_type = attempt.content_type
        if job.save == "bytes":
            ext = naming.extension("bytes", content_type)
            return await self._write(task, ext, attempt.body, attempt)
        body = attempt.body
        if attempt.spill is not None:  # text and JSON must be whole in memory to decode
            body = await asyncio.to_thread(attempt.spill.read_bytes)
            attempt.spill.unlink(missing_ok=True)
            attempt.spill = None
        if job.save == "text":
            try:
                data, codec = await _off_loop(body, _to_utf8, body, content_type, job.encoding)
            except (ValueError, LookupError) as exc:  # UnicodeError is a ValueError
                return await self._keep_raw(task, body, "decode", str(exc))
            saved = await self._write(task, naming.extension("text", content_type), data)
            saved.charset = codec
            return saved
        try:
            parsed, as_is = await _off_loop(body, _parse_json, body, content_type)
        except (ValueError, LookupError, RecursionError) as exc:
            return await self._keep_raw(task, body, "invalid_json", f"body is not JSON: {exc}")
        if job.save == "jsonl":
            line = {"url": task.url_text, "status": attempt.status, "data": parsed}
            data = await _off_loop(body, _json_bytes, line, (",", ":")) + b"\n"
            await asyncio.to_thread(self.storage.append_line, f"{job.name}.jsonl", data)
            return Saved(path=f"{job.name}.jsonl", charset="utf-8")
        if not as_is:
            body = await _off_loop(body, _json_bytes, parsed)
        saved = await self._write(task, ".json", body)
        saved.charset = "utf-8"
        return saved

    async def _keep_raw(self, task: FetchTask, body: bytes, kind: str, message: str) -> Saved:
        saved = await self._write(task, ".bin", body)
        saved.kind, saved.message = kind, message
        return saved

    async def _write(
        self, task: FetchTask, ext: str, data: bytes, attempt: Attempt | None = None
    ) -> Saved:
        name = self.file_name(task, ext)
        try:
            return await self._write_as(f"{task.job.name}/{name}", data, attempt)
        except LocalError:
            raise
        except OSError as exc:
            # A template can make one request's file another's folder (or the reverse); the
            # default name has no folders and holds the request hash, so it cannot clash.
            default = naming.default_name(task.url, task.key, ext)
            if name == default:
                raise
            log.warning("cannot save %s as %s (%s); saving as %s", task.url_text, name,
                        exc.strerror or exc, default)  # fmt: skip
            return await self._write_as(f"{task.job.name}/{default}", data, attempt)
        finally:
            if attempt is not None and attempt.spill is not None:
                attempt.spill.unlink(missing_ok=True)
                attempt.spill = None

    async def _write_as(self, rel: str, data: bytes, attempt: Attempt | None) -> Saved:
        if attempt is not None and attempt.spill is not None:
            known = None
            if attempt.spill_sha256 is not None:
                known = attempt.size, attempt.spill_sha256.hexdigest()
            size, digest = await asyncio.to_thread(self.storage.move_in, rel, attempt.spill, known)
            attempt.spill = None
            return Saved(path=rel, bytes=size, sha256=digest)
        # Create, write, rename and hash together, in the executor, batched with the files
        # other requests finished in the same round of the event loop.
        digest = await self._batcher.write(rel, data)
        return Saved(path=rel, bytes=len(data), sha256=digest)

    def kept(self, previous: Validators) -> Saved:
        """A 304: the file from the last successful fetch stays as it is."""
        return Saved(
            path=previous.path,
            bytes=previous.bytes,
            sha256=previous.sha256,
            charset=previous.charset,
        )
