"""The ``Writer`` of a run (C5, C6, C7): hands a response to its save mode's sink (sinks.py),
picks each file's name (naming.choose_name, claimed in the run state) and writes it
atomically through storage, batched with the other small files of the same loop round."""

from __future__ import annotations

import asyncio
import logging

from ..errors import LocalError
from ..http.fetch import Attempt
from ..state.base import RunStore, Validators
from ..tasks import naming
from ..tasks.expand import FetchTask
from .sinks import SINKS, Saved
from .storage import Storage, WriteBatcher
from .warc import WarcArchive

log = logging.getLogger(__name__)


class ResultWriter:
    """Saves results of one run into its output folder."""

    def __init__(self, storage: Storage, state: RunStore, warc: WarcArchive | None = None) -> None:
        self.storage = storage
        self.state = state
        self.warc = warc
        self._batcher = WriteBatcher(storage)

    def file_name(self, task: FetchTask, ext: str) -> str:
        """The path inside the job folder, unique within the job ignoring case (C6)."""
        return naming.choose_name(task, ext, self.state.claim_name)

    async def save(self, task: FetchTask, attempt: Attempt) -> Saved:
        job = task.job
        if job.method in ("HEAD", "OPTIONS"):
            return Saved(bytes=0)  # no file; the manifest line records the headers
        sink = SINKS[job.save]
        body = attempt.body
        if sink.needs_body and attempt.spill is not None:  # to decode, it must be in memory
            body = await asyncio.to_thread(attempt.spill.read_bytes)
            attempt.spill.unlink(missing_ok=True)
            attempt.spill = None
        return await sink.save(self, task, attempt, body)

    async def archive(self, task: FetchTask, attempt: Attempt) -> Saved:
        """The attempt's exchanges into the job's WARC file; ``bytes`` and ``sha256`` are
        those of the final response's payload (C16)."""
        if self.warc is None or not attempt.exchanges:
            return Saved()
        try:
            archived = await self.warc.append(
                task.job.name, attempt.exchanges, task.job.secret_headers, attempt.spill
            )
        finally:
            if attempt.spill is not None:
                attempt.spill.unlink(missing_ok=True)
                attempt.spill = None
        return Saved(
            path=archived.path,
            bytes=archived.payload_bytes,
            sha256=archived.payload_sha256,
            warc_offset=archived.offset,
            warc_length=archived.length,
        )

    async def append(self, rel: str, line: bytes) -> None:
        await asyncio.to_thread(self.storage.append_line, rel, line)

    async def keep_raw(self, task: FetchTask, body: bytes, kind: str, message: str) -> Saved:
        saved = await self.write(task, ".bin", body)
        saved.kind, saved.message = kind, message
        return saved

    async def write(
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
