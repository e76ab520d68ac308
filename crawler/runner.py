"""The composition root of one run: lock, state, session, pool, writer, summary, exit code.

Per request the order is fixed: the file is written, then its manifest line, then the state
row (batched). A crash at any point leaves at worst a request that is fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from . import fetch, retry
from .errors import LocalError
from .expand import FetchTask, interleave
from .lock import FolderLock
from .manifest import MANIFEST, Manifest, Record, utc_now
from .pool import Pool
from .report_stats import SummaryStats
from .results import ResultWriter, Saved
from .session import build_session
from .spec import JobFile
from .state import DoneRow, RunState, Validators
from .storage import Storage, local_error
from .summary import build_summary, save_summary

if TYPE_CHECKING:
    from .crawl import Crawl

log = logging.getLogger(__name__)

# How long in-flight requests may finish after SIGINT/SIGTERM before they are cancelled (C10).
GRACE_S = 10.0
# State commits, each after the files and manifest lines it covers are synced to disk.
FLUSH_EVERY_S = 0.5

EXIT_OK, EXIT_FAILED, EXIT_LOCAL = 0, 1, 4
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True, slots=True)
class RunOptions:
    out: Path | None = None
    concurrency: int | None = None
    fresh: bool = False


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class Run:
    """One invocation of `crawler run` over an output folder."""

    def __init__(
        self,
        job_file: JobFile,
        options: RunOptions,
        on_finished: Callable[[Record], None] | None = None,
    ) -> None:
        self.job_file = job_file
        self.out = options.out or job_file.output
        self.concurrency = options.concurrency or job_file.concurrency
        self.fresh = options.fresh
        self.on_finished = on_finished
        self.finished_now = 0
        self.skipped = 0  # requests a resumed run had finished before (for the progress)
        self.stats = SummaryStats()
        self._stop_signal: signal.Signals | None = None
        self._fatal: LocalError | None = None
        self._pool: Pool | None = None
        self._cancel_handle: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._crawl: Crawl | None = None  # crawl mode, when a job has `follow`

    # --- set-up ----------------------------------------------------------------------------

    def _open(self) -> tuple[FolderLock, RunState, Storage, Manifest, bool]:
        try:
            (self.out / ".crawler").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, self.out) from exc
        lock = FolderLock(self.out)
        lock.acquire()
        try:
            state = RunState(self.out / ".crawler" / "state.sqlite3")
            storage = Storage(self.out)
            storage.prepare()
            previous = None if self.fresh else state.unfinished_run()
            if previous:
                state.resume_run(previous)
                recovered = state.recover(self.out / MANIFEST)
                if recovered:
                    log.info("recovered %d finished requests from the manifest", recovered)
                log.warning("resuming unfinished run %s in %s", previous, self.out)
            else:
                state.start_run(new_run_id(), utc_now())
            manifest = Manifest(storage)
        except OSError as exc:
            lock.release()
            raise local_error(exc, self.out) from exc
        except BaseException:
            lock.release()
            raise
        return lock, state, storage, manifest, bool(previous) and state.has_done()

    def _tasks(self, state: RunState, resuming: bool) -> Iterator[FetchTask]:
        tasks = interleave(self.job_file.jobs)
        if self._crawl is not None:
            tasks = self._crawl.seeds(tasks)
        if not resuming:
            return tasks
        return self._skip_done(tasks, state)

    def _skip_done(self, tasks: Iterator[FetchTask], state: RunState) -> Iterator[FetchTask]:
        for task in tasks:
            if state.is_done(task.key):
                self.skipped += 1
            else:
                yield task

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Fetch everything; returns the summary (its ``exit_code`` is the process's)."""
        lock, state, storage, manifest, resuming = self._open()
        self.state, self.storage, self.manifest = state, storage, manifest
        self.writer = ResultWriter(storage, state)
        started = time.monotonic()
        try:
            fetch.read_proxy_environment()
            async with build_session(self.concurrency, self.job_file.per_host) as session:
                self.session = session
                crawl = self._crawl = _crawl_for_run(self.job_file, state, session, storage)
                pool = self._pool = Pool(
                    self._tasks(state, resuming),
                    self._run_one,
                    concurrency=self.concurrency,
                    per_host=self.job_file.per_host,
                    rate_per_host=self.job_file.rate_per_host,
                    discovered=crawl.next_task if crawl is not None else None,
                )
                if crawl is not None:
                    crawl.pool = pool
                flusher = asyncio.create_task(self._flush_periodically())
                self._install_signals()
                try:
                    await pool.run()
                finally:
                    self._remove_signals()
                    flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await flusher
            try:
                await self._flush()
            except LocalError as exc:
                self._fatal = self._fatal or exc
                log.error("stopping: %s", exc)
            return self._finish(started)
        finally:
            storage.close()
            state.close()
            lock.release()

    def _finish(self, started: float) -> dict[str, Any]:
        totals = self.state.totals()
        if self._fatal is not None:
            exit_code = EXIT_LOCAL
        elif self._stop_signal is not None:
            exit_code = EXIT_SIGNAL[self._stop_signal]
        else:
            exit_code = EXIT_FAILED if totals["failed"] else EXIT_OK
        finished_at = utc_now()
        summary = build_summary(
            run=self.state.run_id,
            started_at=self.state.run_started_at(),
            finished_at=finished_at,
            duration_s=time.monotonic() - started,
            totals=totals,
            this_invocation=self.finished_now,
            exit_code=exit_code,
            out=str(self.out),
            stats=self.stats,
            crawl=self._crawl.totals() if self._crawl is not None else None,
        )
        if self._fatal is not None:
            summary["error"] = str(self._fatal)
        with contextlib.suppress(LocalError):
            save_summary(self.storage, summary)
        if exit_code in (EXIT_OK, EXIT_FAILED):
            self.state.finish_run(finished_at, exit_code)  # the next invocation starts anew
        return summary

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                await self._flush()
            except LocalError as exc:
                self._abort(exc)
                return

    async def _flush(self) -> None:
        """Commit the finished requests so far, once their files and manifest lines are on
        disk: a state row then survives a power loss as surely as the file it stands for."""
        self.manifest.write()
        batch = self.state.seal(self.manifest.offset)
        if batch.done or batch.validators:
            try:
                await asyncio.to_thread(self.storage.sync)
            except asyncio.CancelledError:
                # The periodic flusher is cancelled at the end of the run, maybe right here:
                # its rows go back, for the final flush to commit, or they would be lost.
                self.state.unseal(batch)
                raise
        self.state.commit(batch)

    # --- one request -----------------------------------------------------------------------

    async def _run_one(self, task: FetchTask) -> float | None:
        """One attempt of ``task``; a delay when it should be retried, else None."""
        try:
            return await self._attempt(task)
        except LocalError as exc:
            self._abort(exc)
        except Exception as exc:
            # A bug or an unforeseen OS refusal must cost this one request, not the run.
            log.exception("internal error on %s", task.url_text)
            task.attempts = max(task.attempts, 1)
            message = f"internal error: {type(exc).__name__}: {exc}"
            self._record(task, None, Saved(kind="protocol", message=message))
        return None

    async def _attempt(self, task: FetchTask) -> float | None:
        job = task.job
        if task.attempts == 0:
            task.started_at = time.monotonic()
        if task.invalid:
            task.attempts = 1
            self._record(task, None, Saved(kind="connect", message=f"invalid URL: {task.invalid}"))
            return None
        previous = self.state.validators(task.key) if job.conditional else None
        if previous and not (self.out / previous.path).is_file():
            previous = None
        if job.follow and self._crawl is not None:
            # Crawl mode: robots.txt first; the page's links are queued before its record.
            crawled = await self._crawl.fetch(task, _conditional_headers(previous))
            if crawled is None:
                return None  # robots.txt keeps it out: counted in the summary, not fetched
            attempt = crawled
        else:
            attempt = await fetch.attempt(
                self.session, task, _conditional_headers(previous), self.storage.temp_path
            )
        task.attempts += 1
        kind, message = attempt.kind, attempt.message
        status = attempt.status
        not_modified = status == 304 and previous is not None
        if kind is None and status is not None and not (200 <= status < 300 or not_modified):
            kind, message = "http", f"HTTP {status}"
        if kind is not None:
            if (
                retry.should_retry(kind, status)
                and task.attempts <= job.retries
                and self._stop_signal is None
            ):
                header = attempt.headers.get("Retry-After") if attempt.headers else None
                delay = retry.backoff_s(task.attempts, retry.retry_after_s(header))
                log.debug("retry %d of %s in %.2fs: %s", task.attempts, task.url_text, delay, kind)
                return delay
            self._record(task, attempt, Saved(kind=kind, message=message))
            return None
        if not_modified and previous is not None:
            saved = self.writer.kept(previous)
            self._record(task, attempt, saved, content_type=previous.content_type)
            return None
        saved = await self.writer.save(task, attempt)
        if job.conditional and saved.kind is None and saved.path and attempt.headers is not None:
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
        self._record(task, attempt, saved)
        return None

    def _record(
        self,
        task: FetchTask,
        attempt: fetch.Attempt | None,
        saved: Saved,
        content_type: str | None = None,
    ) -> None:
        """Write the manifest line, then batch the state row; the file is already in place."""
        ok = saved.kind is None
        status = attempt.status if attempt else None
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
            error=None if ok else {"kind": str(saved.kind), "message": saved.message or ""},
            fetched_at=utc_now(),
            key=task.key,
            depth=task.depth,
            referrer=task.referrer,
        )
        if self.manifest.append(record):
            asyncio.get_running_loop().call_soon(self._write_manifest)
        self.state.add_done(DoneRow(task.key, ok, saved.kind, status, saved.bytes, task.attempts))
        self.finished_now += 1
        self.stats.add_record(record)
        if not ok:
            log.warning(
                "%s %s failed after %d attempt(s): %s: %s",
                task.job.name,
                task.url_text,
                task.attempts,
                saved.kind,
                saved.message,
                extra={
                    "run": record.run,
                    "job": task.job.name,
                    "url": task.url_text,
                    "status": status,
                    "kind": saved.kind,
                    "error": saved.message,
                    "attempt": task.attempts,
                },
            )
        if self.on_finished is not None:
            self.on_finished(record)

    def _write_manifest(self) -> None:
        """The manifest lines of the requests that finished in this round of the loop."""
        try:
            self.manifest.write()
        except LocalError as exc:
            self._abort(exc)

    # --- stopping --------------------------------------------------------------------------

    def _abort(self, exc: LocalError) -> None:
        if self._fatal is None:
            log.error("stopping: %s", exc)
            self._fatal = exc
            if self._pool is not None:
                self._pool.stop()
                self._background.add(asyncio.create_task(self._pool.cancel_inflight()))

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in EXIT_SIGNAL:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in EXIT_SIGNAL:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if self._cancel_handle is not None:
            self._cancel_handle.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        pool = self._pool
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        if self._stop_signal is None:
            self._stop_signal = sig
            log.warning(
                "%s: finishing %d request(s) in flight (up to %.0f s), then stopping; "
                "the next run resumes",
                sig.name,
                pool.inflight,
                GRACE_S,
            )
            pool.stop()
            self._cancel_handle = loop.call_later(
                GRACE_S, lambda: self._background.add(loop.create_task(pool.cancel_inflight()))
            )
        elif sig == signal.SIGINT:
            log.warning("second SIGINT: cancelling requests in flight")
            self._background.add(loop.create_task(pool.cancel_inflight()))


def _crawl_for_run(
    job_file: JobFile, state: RunState, session: aiohttp.ClientSession, storage: Storage
) -> Crawl | None:
    """Crawl mode's state, imported only when a job has ``follow`` (its HTML parser and
    robots.txt modules cost start-up time every other run would pay for nothing)."""
    if not any(job.follow for job in job_file.jobs):
        return None
    from .crawl import Crawl

    return Crawl.for_run(job_file, state, session, storage)


def _conditional_headers(previous: Validators | None) -> dict[str, str] | None:
    if previous is None:
        return None
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers or None


async def run_job_file(job_file: JobFile, options: RunOptions) -> dict[str, Any]:
    """Run ``job_file`` to the end; returns the summary."""
    return await Run(job_file, options).run()
