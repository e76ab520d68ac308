"""One request from start to record, as a chain of named stages:

    admit -> conditional headers -> fetch -> decide -> save -> record

``admit`` and the page's links (``discover``) are crawl mode's hooks, for follow jobs only.
``decide`` is pure (decide.py). The record stage writes the manifest line (the file is in
place already) and batches the state row; the runner commits rows only after syncing the
files and lines they cover. A retry is the pool's business: ``run_one`` returns its delay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from ..errors import LocalError
from ..http import fetch
from ..outcome import Kind
from ..output.manifest import Manifest, Record, utc_now
from ..output.results import ResultWriter
from ..output.sinks import Saved
from ..report.stats import SummaryStats
from ..state.base import DoneRow, RunStore, Validators
from ..tasks.expand import FetchTask
from .breaker import HostBreaker
from .decide import Fail, Keep, Retry, decide

if TYPE_CHECKING:
    from ..crawl.crawl import Crawl

log = logging.getLogger(__name__)

MAX_INVALID_SAID = 20  # invalid_url lines logged as warnings per invocation


class Worker:
    """Runs one attempt of a task at a time for the pool; shared by every request of a run."""

    def __init__(
        self,
        *,
        out: Path,
        session: aiohttp.ClientSession,
        state: RunStore,
        writer: ResultWriter,
        manifest: Manifest,
        temp_path: Callable[[], Path],
        crawl: Crawl | None,
        stats: SummaryStats,
        stopping: Callable[[], bool],
        abort: Callable[[LocalError], None],
        breaker: HostBreaker,
        on_finished: Callable[[Record], None] | None = None,
    ) -> None:
        self.out = out
        self.session = session
        self.state = state
        self.writer = writer
        self.manifest = manifest
        self.temp_path = temp_path
        self.crawl = crawl
        self.stats = stats
        self.stopping = stopping
        self.abort = abort
        self.breaker = breaker
        self.on_finished = on_finished
        self.finished = 0
        self._invalid_said = 0  # requests this invocation recorded

    async def run_one(self, task: FetchTask) -> float | None:
        """One attempt of ``task``; a delay when it should be retried, else None."""
        try:
            return await self._attempt(task)
        except LocalError as exc:
            self.abort(exc)
        except Exception as exc:
            # A bug or an unforeseen OS refusal must cost this one request, not the run.
            log.exception("internal error on %s", task.url_text)
            task.attempts = max(task.attempts, 1)
            message = f"internal error: {type(exc).__name__}: {exc}"
            self.record(task, None, Saved(kind=Kind.PROTOCOL, message=message))
        return None

    def settle(self, task: FetchTask) -> bool:
        """Finish ``task`` without a request when none is needed: a urls_file line that is
        not a URL (``invalid_url``) or a host that is down (``host_down``). The pool asks
        before it spends a slot or a rate token on the task. True when it was settled."""
        if task.invalid is not None:
            kind, message = Kind.INVALID_URL, f"not an http(s) URL: {task.invalid}"
        elif self.breaker.is_down(task.host):
            kind, message = Kind.HOST_DOWN, self.breaker.why(task.host, task.attempts)
        else:
            return False
        if task.attempts == 0:
            task.started_at = time.monotonic()
        self.record(task, None, Saved(kind=kind, message=message))
        return True

    async def _attempt(self, task: FetchTask) -> float | None:
        job = task.job
        if task.attempts == 0:
            task.started_at = time.monotonic()
        if self.settle(task):
            return None
        crawl = self.crawl if job.follow else None
        # admit: robots.txt keeps it out (counted in the summary, not fetched), or not
        if crawl is not None and not await crawl.admit(task):
            return None
        previous = self._previous(task)
        sent = _conditional_headers(previous)
        began = time.monotonic()
        attempt = await fetch.attempt(self.session, task, sent, self.temp_path)
        task.fetch_s += time.monotonic() - began
        if attempt.connect_failed:
            self.breaker.failed(task.host)
        elif attempt.status is not None:
            self.breaker.connected(task.host)
        if crawl is not None:
            await crawl.discover(task, attempt, sent is not None)
        task.attempts += 1
        decision = decide(
            kind=attempt.kind,
            message=attempt.message,
            status=attempt.status,
            attempts=task.attempts,
            retries=job.retries,
            stopping=self.stopping(),
            conditional_sent=previous is not None,
            retry_after=attempt.headers.get("Retry-After") if attempt.headers else None,
        )
        if isinstance(decision, Retry):
            log.debug(
                "retry %d of %s in %.2fs: %s",
                task.attempts,
                task.url_text,
                decision.delay_s,
                attempt.kind or attempt.status,
            )
            return decision.delay_s
        if isinstance(decision, Fail):
            saved = Saved()
            if attempt.exchanges:  # a 404 or a 503 after retries is archived too (C16)
                saved = await self.writer.archive(task, attempt)
            saved.kind, saved.message = decision.kind, decision.message
            self.record(task, attempt, saved)
        elif isinstance(decision, Keep) and previous is not None:
            saved = self.writer.kept(previous)
            self.record(task, attempt, saved, content_type=previous.content_type)
        else:
            saved = await self.writer.save(task, attempt)
            self._remember_validators(task, attempt, saved)
            self.record(task, attempt, saved)
        return None

    def _previous(self, task: FetchTask) -> Validators | None:
        """The validators of the last successful fetch, for a conditional job whose file is
        still there."""
        if not task.job.conditional:
            return None
        previous = self.state.validators(task.key)
        if previous and not (self.out / previous.path).is_file():
            return None
        return previous

    def _remember_validators(self, task: FetchTask, attempt: fetch.Attempt, saved: Saved) -> None:
        if not task.job.conditional or saved.kind is not None or not saved.path:
            return
        if attempt.headers is None:
            return
        etag = attempt.headers.get("ETag")
        modified = attempt.headers.get("Last-Modified")
        if etag or modified:
            self.state.set_validators(
                task.key,
                Validators(
                    etag,
                    modified,
                    saved.path,
                    saved.bytes,
                    saved.sha256,
                    attempt.content_type,
                    saved.charset,
                ),
            )

    def record(
        self,
        task: FetchTask,
        attempt: fetch.Attempt | None,
        saved: Saved,
        content_type: str | None = None,
    ) -> None:
        """Write the manifest line, then batch the state row; the file is already in place."""
        ok = saved.kind is None
        status = attempt.status if attempt else None
        kind = None if saved.kind is None else str(saved.kind)
        record = Record(
            run=self.state.run_id,
            job=task.job.name,
            method=task.job.method,
            url=task.url_text,
            final_url=attempt.final_url if attempt else None,
            status=status,
            ok=ok,
            path=saved.path,
            bytes=saved.bytes,
            sha256=saved.sha256,
            content_type=content_type or (attempt.content_type if attempt else None),
            charset=saved.charset,
            elapsed_ms=round((time.monotonic() - task.started_at) * 1000, 1),
            attempts=task.attempts,
            error=None if kind is None else {"kind": kind, "message": saved.message or ""},
            fetched_at=utc_now(),
            key=task.key,
            depth=task.depth,
            referrer=task.referrer,
            headers=attempt.received_headers if attempt else None,
            fetch_ms=round(task.fetch_s * 1000, 1),
            warc_offset=saved.warc_offset,
            warc_length=saved.warc_length,
        )
        if self.manifest.append(record):
            asyncio.get_running_loop().call_soon(self._write_manifest)
        self.state.add_done(DoneRow(task.key, ok, kind, status, saved.bytes, task.attempts))
        self.finished += 1
        self.stats.add_record(record)
        if not ok:
            log.log(
                self._failure_level(kind or ""),
                "%s %s failed after %d attempt(s): %s: %s",
                task.job.name,
                task.url_text,
                task.attempts,
                kind,
                saved.message,
                extra={
                    "run": record.run,
                    "job": task.job.name,
                    "url": task.url_text,
                    "status": status,
                    "kind": kind,
                    "error": saved.message,
                    "attempt": task.attempts,
                },
            )
        if self.on_finished is not None:
            self.on_finished(record)

    def _failure_level(self, kind: str) -> int:
        """WARNING for a failed request, but not one per line for the many alike: a host
        that is down is said once (by the breaker), urls_file lines that are not URLs
        the first few times (validate and --dry-run list them)."""
        if kind == Kind.HOST_DOWN:
            return logging.DEBUG
        if kind == Kind.INVALID_URL:
            self._invalid_said += 1
            if self._invalid_said > MAX_INVALID_SAID:
                return logging.DEBUG
        return logging.WARNING

    def _write_manifest(self) -> None:
        """The manifest lines of the requests that finished in this round of the loop."""
        try:
            self.manifest.write()
        except LocalError as exc:
            self.abort(exc)


def _conditional_headers(previous: Validators | None) -> dict[str, str] | None:
    if previous is None:
        return None
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers or None
