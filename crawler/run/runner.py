"""The composition root of one run: lock, state, session, pool, worker, flushes, signals,
summary and exit code. What happens to one request is the worker's (worker.py).

Per request the order is fixed: the file is written, then its manifest line, then the state
row (batched, committed here after a sync). A crash at any point leaves at worst a request
that is fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from .. import exitcodes
from ..config.spec import JobFile
from ..errors import LocalError
from ..http.cookies import forget as forget_cookies
from ..http.options import read_proxy_environment
from ..http.session import build_session
from ..output.layout import Layout
from ..output.manifest import Manifest, Record, replay_into, utc_now
from ..output.results import ResultWriter
from ..output.storage import Storage, local_error
from ..output.warc import WarcArchive, open_archive
from ..report.stats import SummaryStats
from ..report.summary import build_summary, save_summary
from ..state.base import RunStore
from ..state.lock import FolderLock
from ..state.sqlite import RunState
from ..tasks.dedupe import first_only
from ..tasks.expand import FetchTask, interleave
from ..tasks.shard import Shard, only_shard
from .breaker import HostBreaker
from .pool import Pool
from .worker import Worker

if TYPE_CHECKING:
    from ..crawl.crawl import Crawl

log = logging.getLogger(__name__)

# How long in-flight requests may finish after SIGINT/SIGTERM before they are cancelled (C10).
GRACE_S = 10.0
# State commits, each after the files and manifest lines it covers are synced to disk.
FLUSH_EVERY_S = 0.5


@dataclass(frozen=True, slots=True)
class RunOptions:
    out: Path | None = None
    concurrency: int | None = None
    fresh: bool = False
    # One shard of N (C15): its requests only, in OUT/shards/K-of-N, a complete output folder.
    shard: Shard | None = None


def output_folder(out: Path, shard: Shard | None) -> Path:
    """The folder a run writes: OUT, or OUT/shards/K-of-N for one shard."""
    return out if shard is None else Layout(out).shard(shard.index, shard.count).out


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
        self.shard = options.shard
        self.out = output_folder(options.out or job_file.output, options.shard)
        self.concurrency = options.concurrency or job_file.concurrency
        self.fresh = options.fresh
        self.on_finished = on_finished
        self.skipped = 0  # requests a resumed run had finished before (for the progress)
        self.stats = SummaryStats()
        self._stop_signal: signal.Signals | None = None
        self._fatal: LocalError | None = None
        self._pool: Pool | None = None
        self._cancel_handle: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._crawl: Crawl | None = None  # crawl mode, when a job has `follow`
        self._worker: Worker | None = None
        self._continued = False  # this invocation continues an unfinished run

    @property
    def crawl(self) -> Crawl | None:
        """Crawl mode's state, when a job has ``follow`` (for the live display)."""
        return self._crawl

    @property
    def finished_now(self) -> int:
        """Requests this invocation finished (recorded)."""
        return self._worker.finished if self._worker is not None else 0

    # --- set-up ----------------------------------------------------------------------------

    def _open(self) -> tuple[FolderLock, RunStore, Storage, Manifest, bool]:
        layout = Layout(self.out)
        try:
            layout.private.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_error(exc, self.out) from exc
        lock = FolderLock(self.out)
        lock.acquire()
        try:
            state = RunState(layout.state)
            storage = Storage(self.out)
            storage.prepare()
            previous = None if self.fresh else state.unfinished_run()
            self._continued = bool(previous)
            if previous:
                state.resume_run(previous)
                recovered = replay_into(state, layout.manifest)
                if recovered:
                    log.info("recovered %d finished requests from the manifest", recovered)
                log.warning("resuming unfinished run %s in %s", previous, self.out)
            else:
                state.start_run(new_run_id(), utc_now())
            manifest = Manifest(storage)
        except OSError as exc:
            lock.release()
            raise local_error(exc, self.out) from exc
        except sqlite3.DatabaseError as exc:
            lock.release()
            raise LocalError(
                f"the run state {layout.state} is damaged ({exc}); move it aside and run "
                "again: the run starts over, the manifest keeps the earlier lines"
            ) from exc
        except BaseException:
            lock.release()
            raise
        return lock, state, storage, manifest, bool(previous) and state.has_done()

    def _tasks(self, state: RunStore, resuming: bool) -> Iterator[FetchTask]:
        tasks = first_only(interleave(self.job_file.jobs))
        if self.shard is not None:
            # Before crawl mode sees them: a follow job's start URL is sharded by its own host
            # and the links it leads to stay in its shard.
            tasks = only_shard(tasks, self.shard)
        if self._crawl is not None:
            tasks = self._crawl.seeds(tasks)
        if not resuming:
            return tasks
        return self._skip_done(tasks, state)

    def _skip_done(self, tasks: Iterator[FetchTask], state: RunStore) -> Iterator[FetchTask]:
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
        started = time.monotonic()
        warc = self._warc_archive()
        forget_cookies()  # kept cookies live within one run's jobs, never into the next
        try:
            read_proxy_environment()
            async with build_session(self.concurrency, self.job_file.per_host) as session:
                self.session = session
                crawl = self._crawl = _crawl_for_run(
                    self.job_file, state, session, storage, self._set_host_rate
                )
                worker = self._worker = Worker(
                    out=self.out,
                    session=session,
                    state=state,
                    writer=ResultWriter(storage, state, warc),
                    manifest=manifest,
                    temp_path=storage.temp_path,
                    crawl=crawl,
                    stats=self.stats,
                    stopping=lambda: self._stop_signal is not None,
                    abort=self._abort,
                    breaker=HostBreaker(self.job_file.host_down_after, self._host_down),
                    on_finished=self.on_finished,
                )
                pool = self._pool = Pool(
                    self._tasks(state, resuming),
                    worker.run_one,
                    concurrency=self.concurrency,
                    per_host=self.job_file.per_host,
                    rate_per_host=self.job_file.rate_per_host,
                    discovered=crawl.next_task if crawl is not None else None,
                    settle=worker.settle,
                )
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
            if warc is not None:
                warc.close()
            storage.close()
            state.close()
            lock.release()

    def _finish(self, started: float) -> dict[str, Any]:
        totals = self.state.totals()
        if self._fatal is not None:
            exit_code = exitcodes.LOCAL
        elif self._stop_signal is not None:
            exit_code = exitcodes.BY_SIGNAL[self._stop_signal]
        else:
            exit_code = exitcodes.FAILED if totals["failed"] else exitcodes.OK
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
        if self.shard is not None:
            summary.update(shard=self.shard.index, shards=self.shard.count, shard_by=self.shard.by)
        if self._fatal is not None:
            summary["error"] = str(self._fatal)
        if exit_code not in exitcodes.FINISHED:
            # A stopped run never reads like a clean one (C17).
            summary["stopped"] = (
                str(self._fatal)
                if self._fatal is not None
                else signal.Signals(self._stop_signal or signal.SIGTERM).name
            )
            remaining = self._known_remaining(int(totals["requests"]))  # type: ignore[call-overload]
            if remaining is not None:
                summary["remaining"] = remaining
        with contextlib.suppress(LocalError):
            save_summary(self.storage, summary)
        if exit_code in exitcodes.FINISHED:
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

    def _warc_archive(self) -> WarcArchive | None:
        jobs = [job.name for job in self.job_file.jobs if job.save == "warc"]
        return open_archive(
            self.out, self.state.run_id, self.job_file.path.name, jobs, self._continued
        )

    def _known_remaining(self, finished: int) -> int | None:
        """Requests of the run not finished yet, where that is known without reading a
        urls_file again or guessing what a crawl will find: jobs of inline URLs only."""
        jobs = self.job_file.jobs
        if any(job.source.urls_file is not None or job.follow is not None for job in jobs):
            return None
        if self.shard is not None:
            return None
        total = sum(1 for _ in first_only(interleave(jobs)))
        return max(total - finished, 0)

    def _host_down(self, host: str) -> None:
        if self._pool is not None:
            self._pool.release_waiting(host)

    def _set_host_rate(self, host: str, rate: float) -> None:
        if self._pool is not None:
            self._pool.set_host_rate(host, rate)

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
        for sig in exitcodes.BY_SIGNAL:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in exitcodes.BY_SIGNAL:
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
    job_file: JobFile,
    state: RunStore,
    session: aiohttp.ClientSession,
    storage: Storage,
    set_host_rate: Callable[[str, float], None],
) -> Crawl | None:
    """Crawl mode's state, imported only when a job has ``follow`` (its HTML parser and
    robots.txt modules cost start-up time every other run would pay for nothing)."""
    if not any(job.follow for job in job_file.jobs):
        return None
    from ..crawl.crawl import Crawl

    jobs = tuple(job for job in job_file.jobs if job.follow is not None)
    return Crawl(jobs, state, session, storage, set_host_rate)


async def run_job_file(job_file: JobFile, options: RunOptions) -> dict[str, Any]:
    """Run ``job_file`` to the end; returns the summary."""
    return await Run(job_file, options).run()
