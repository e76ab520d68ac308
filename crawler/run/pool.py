"""The bounded scheduler: at most ``concurrency`` requests in flight, ``per_host`` per host,
``rate_per_host`` starts per second per host (C4), over a bounded lookahead of tasks grouped
by host so one busy host never starves the others. A task waiting to retry holds no slot.

The pool knows nothing of HTTP or disk: it calls ``run_one(task)``, which returns None when
the task is finished or a delay in seconds after which it must run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from ..tasks.expand import FetchTask

log = logging.getLogger(__name__)

RunOne = Callable[[FetchTask], Awaitable[float | None]]


@dataclass(slots=True)
class _Host:
    """One host's queue, slots and token bucket."""

    pending: deque[FetchTask] = field(default_factory=deque)
    active: int = 0
    tokens: float = 0.0
    refilled_at: float = 0.0
    queued: bool = False  # in the ready ring
    timer: asyncio.TimerHandle | None = None


class Pool:
    def __init__(
        self,
        source: Iterator[FetchTask],
        run_one: RunOne,
        *,
        concurrency: int,
        per_host: int,
        rate_per_host: float | None = None,
        lookahead: int | None = None,
        discovered: Callable[[], FetchTask | None] | None = None,
        settle: Callable[[FetchTask], bool] | None = None,
    ) -> None:
        self._source: Iterator[FetchTask] | None = source
        # Tasks found during the run (crawl mode's frontier): asked for once ``source`` is
        # exhausted; None means "nothing now", and the run ends when nothing is in flight.
        self._discovered = discovered
        self._host_rates: dict[str, float] = {}
        # Finishes a task without a slot or a rate token when that needs no request (its
        # host is down); True when it did.
        self._settle = settle
        self._run_one = run_one
        self._concurrency = concurrency
        self._per_host = per_host
        self._rate = rate_per_host
        # Enough read-ahead to keep every slot busy across many hosts, bounded for memory.
        self._lookahead = lookahead or max(4 * concurrency, 1024)
        self._hosts: dict[str, _Host] = {}
        self._ready: deque[str] = deque()
        self._buffered = 0  # tasks read from the source, not yet started
        # Retries not yet due, by id of the task.
        self._waiting: dict[int, tuple[FetchTask, asyncio.TimerHandle]] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.error: Exception | None = None  # a bug in run_one: stops the pool, re-raised

    # --- public ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every task to completion, or until ``stop`` and the in-flight ones settle."""
        while True:
            self._wake.clear()
            if not self._stopping:
                self._refill()
                self._dispatch()
            if not self._inflight and (self._stopping or self._exhausted()):
                break
            await self._wake.wait()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Take no new work; retries not yet due are dropped (a resume repeats them)."""
        self._stopping = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        for host in self._hosts.values():
            if host.timer:
                host.timer.cancel()
        self._wake.set()

    async def cancel_inflight(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # --- scheduling ------------------------------------------------------------------------

    def _exhausted(self) -> bool:
        return self._source is None and self._buffered == 0 and not self._waiting

    def _refill(self) -> None:
        source = self._source
        while source is not None and self._buffered < self._lookahead:
            task = next(source, None)
            if task is None:
                self._source = source = None
                break
            self._push(task, front=False)
        discovered = self._discovered
        while source is None and discovered is not None and self._buffered < self._lookahead:
            task = discovered()
            if task is None:
                break
            self._push(task, front=False)

    def set_host_rate(self, name: str, rate: float) -> None:
        """Limit one host to ``rate`` request starts per second (robots.txt Crawl-delay); the
        stricter of this and rate_per_host applies."""
        if self._rate:
            rate = min(rate, self._rate)
        self._host_rates[name] = rate

    def _push(self, task: FetchTask, *, front: bool) -> None:
        host = self._hosts.get(task.host)
        if host is None:
            host = self._hosts[task.host] = _Host(
                tokens=self._burst(), refilled_at=time.monotonic()
            )
        if front:
            host.pending.appendleft(task)
        else:
            host.pending.append(task)
        self._buffered += 1
        self._mark_ready(task.host, host)

    def _burst(self) -> float:
        # rate_per_host allows no burst beyond one second's worth (C4); a bucket of one token
        # spaces starts evenly, 1/rate apart, which is the politest reading of that rule.
        return 1.0

    def _mark_ready(self, name: str, host: _Host) -> None:
        if not host.queued and host.pending and host.active < self._per_host:
            host.queued = True
            self._ready.append(name)

    def _take_token(self, name: str, host: _Host) -> bool:
        """Token bucket: True if the host may start a request now; else arm a wake-up."""
        rate = self._host_rates.get(name, self._rate) if self._host_rates else self._rate
        if not rate:
            return True
        now = time.monotonic()
        host.tokens = min(self._burst(), host.tokens + (now - host.refilled_at) * rate)
        host.refilled_at = now
        if host.tokens >= 1.0:
            host.tokens -= 1.0
            return True
        if host.timer is None:
            delay = (1.0 - host.tokens) / rate
            host.timer = asyncio.get_running_loop().call_later(delay, self._rate_due, name)
        return False

    def _rate_due(self, name: str) -> None:
        host = self._hosts[name]
        host.timer = None
        self._mark_ready(name, host)
        self._wake.set()

    def _dispatch(self) -> None:
        ready = self._ready
        while ready and len(self._inflight) < self._concurrency:
            name = ready.popleft()
            host = self._hosts[name]
            host.queued = False
            if self._settle is not None:
                while host.pending and self._settle(host.pending[0]):
                    host.pending.popleft()
                    self._buffered -= 1
                if not host.pending:
                    self._forget_if_idle(name, host)
                    continue
            if not host.pending or host.active >= self._per_host:
                continue
            if not self._take_token(name, host):
                continue
            task = host.pending.popleft()
            self._buffered -= 1
            host.active += 1
            self._start(task, name, host)
            self._mark_ready(name, host)

    def _forget_if_idle(self, name: str, host: _Host) -> None:
        """Drop an idle host's entry so memory does not grow with the number of hosts; one
        with a partly used token bucket stays, or dropping it would reset its rate."""
        if host.pending or host.active or host.timer is not None:
            return
        rate = self._host_rates.get(name, self._rate) if self._host_rates else self._rate
        if rate:
            elapsed = time.monotonic() - host.refilled_at
            if host.tokens + elapsed * rate < self._burst():
                return
        del self._hosts[name]

    def _start(self, task: FetchTask, name: str, host: _Host) -> None:
        running = asyncio.create_task(self._run(task, name, host))
        self._inflight.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Task[None]) -> None:
        self._inflight.discard(running)
        self._wake.set()

    async def _run(self, task: FetchTask, name: str, host: _Host) -> None:
        try:
            delay = await self._run_one(task)
        except Exception as exc:
            if self.error is None:
                self.error = exc
                self.stop()
            return
        finally:
            host.active -= 1
            self._mark_ready(name, host)
            self._forget_if_idle(name, host)
            self._wake.set()
        if delay is not None and not self._stopping:
            self._schedule_retry(task, delay)

    def _schedule_retry(self, task: FetchTask, delay: float) -> None:
        ident = id(task)

        def due() -> None:
            self._waiting.pop(ident, None)
            self._push(task, front=True)
            self._wake.set()

        self._waiting[ident] = (task, asyncio.get_running_loop().call_later(delay, due))

    def release_waiting(self, name: str) -> None:
        """Queue at once the tasks of host ``name`` that wait to retry (it is down: they
        will be settled, not attempted)."""
        for ident, (task, handle) in list(self._waiting.items()):
            if task.host == name:
                handle.cancel()
                del self._waiting[ident]
                self._push(task, front=True)
        self._wake.set()
