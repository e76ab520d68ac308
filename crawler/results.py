"""Turn a finished response into what lands on disk (C5, C6, C7): decode text, check JSON, pick
the file name, and hand the bytes to storage. A body that cannot be decoded or parsed is kept
raw and reported, never dropped."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from . import charset, naming
from .expand import FetchTask
from .fetch import Attempt
from .state import RunState, Validators
from .storage import Storage


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


class ResultWriter:
    """Saves results of one run into its output folder."""

    def __init__(self, storage: Storage, state: RunState) -> None:
        self.storage = storage
        self.state = state

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
                text, codec = charset.decode(body, content_type, job.encoding)
            except (UnicodeDecodeError, LookupError) as exc:
                return await self._keep_raw(task, body, "decode", str(exc))
            saved = await self._write(task, naming.extension("text", content_type), text.encode())
            saved.charset = codec
            return saved
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            return await self._keep_raw(task, body, "invalid_json", f"body is not JSON: {exc}")
        if job.save == "jsonl":
            line = {"url": task.url_text, "status": attempt.status, "data": parsed}
            text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
            await asyncio.to_thread(self.storage.append_line, f"{job.name}.jsonl", text.encode())
            return Saved(path=f"{job.name}.jsonl", charset="utf-8")
        if not _is_utf8_json(body):
            body = json.dumps(parsed, ensure_ascii=False).encode()
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
        rel = f"{task.job.name}/{self.file_name(task, ext)}"
        if attempt is not None and attempt.spill is not None:
            size, digest = await asyncio.to_thread(self.storage.move_in, rel, attempt.spill)
            attempt.spill = None
            return Saved(path=rel, bytes=size, sha256=digest)
        # One executor trip per file: create, write, rename and hash together.
        digest = await asyncio.to_thread(self.storage.write_bytes, rel, data)
        return Saved(path=rel, bytes=len(data), sha256=digest)

    def kept(self, previous: Validators) -> Saved:
        """A 304: the file from the last successful fetch stays as it is."""
        return Saved(
            path=previous.path,
            bytes=previous.bytes,
            sha256=previous.sha256,
            charset=previous.charset,
        )
