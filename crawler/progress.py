"""The live progress display on stderr for people watching a run at a terminal (C13): done /
total, requests per second, bytes, failures by kind, ETA, drawn by rich a few times a second.

It reads counts and never writes run state. The per-request hook (``update``) only bumps
counters; everything else happens in rich's refresh thread, a few times a second. The total
of a ``urls_file`` is counted by a background thread while the run goes on; until it is known
the display shows a pulsing bar and no ETA.

A crawl (a job with ``follow``) has no total up front: it shows pages fetched out of the pages
its frontier holds so far, how many of those are queued, the link depth being fetched, and an
ETA once the frontier has stopped growing (the crawl is at its last depth, max_pages is
reached, or no new page was found for FRONTIER_STILL_S seconds).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .config.spec import JobSpec
from .logs import routed_through
from .output.manifest import Record
from .report.summary import human_bytes
from .tasks.expand import iter_urls_file

if TYPE_CHECKING:  # not imported to run: crawl mode's modules load only for a crawl
    from .crawl.crawl import CrawlProgress

REDRAWS_PER_S = 4
# Requests per second are measured over this much recent time, so the rate and the ETA follow
# a run that slows down or speeds up.
RATE_WINDOW_S = 10.0
_SAMPLE_S = 0.2
_CHECK_STOP_EVERY = 65_536  # lines counted between looks at the stop flag
# A crawl's frontier that found no new page for this long is taken as done growing (ETA shown).
FRONTIER_STILL_S = 5.0


class _RunCounters(Protocol):
    @property
    def skipped(self) -> int:
        """Requests a resumed run had finished before this invocation."""


class _CrawlState(Protocol):
    def progress(self) -> CrawlProgress:
        """Where the crawl stands: plain counters, safe to read from another thread."""


def _crawl_of(run: _RunCounters | None) -> _CrawlState | None:
    """The run's crawl state (crawl/crawl.py's Crawl, ``Run.crawl``) once the run has made
    it, when a job follows links."""
    crawl = getattr(run, "crawl", None)
    return crawl if callable(getattr(crawl, "progress", None)) else None


def count_requests(jobs: Sequence[JobSpec], stop: threading.Event | None = None) -> int | None:
    """How many requests ``jobs`` make, reading each urls_file once; None when that cannot be
    known up front (a crawl job that follows links, an unreadable file, or ``stop`` set)."""
    total = 0
    for job in jobs:
        if job.follow is not None:
            return None
        path = job.source.urls_file
        if path is None:
            total += len(job.source.urls)
            continue
        try:
            for n, _ in enumerate(iter_urls_file(path), 1):
                if n % _CHECK_STOP_EVERY == 0 and stop is not None and stop.is_set():
                    return None
                total += 1
        except OSError:
            return None
    return total


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counters of finished requests, and their live display while ``running``."""

    def __init__(
        self,
        stream: TextIO,
        jobs: Sequence[JobSpec] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Forced: the caller decided to show progress (a terminal, or --progress).
        self.console = Console(file=stream, force_terminal=True, highlight=False)
        self.done = 0
        self.pages = 0  # of them, pages of follow jobs (crawl mode)
        self.bytes = 0
        self.failed: Counter[str] = Counter()
        self.total: int | None = None
        self.counting = bool(jobs)
        self._jobs = tuple(jobs)
        self._clock = clock
        self._started = clock()
        self._samples: deque[tuple[float, int, int]] = deque()
        self._run: _RunCounters | None = None
        self._stop_counting = threading.Event()
        self._frontier_seen = (-1, 0.0)  # (pages the crawl knew, when that last changed)

    def update(self, record: Record) -> None:
        """Count one finished request: O(1), called for every request."""
        self.done += 1
        if record.depth is not None:
            self.pages += 1
        self.bytes += record.bytes or 0
        if record.error:
            self.failed[record.error["kind"]] += 1

    # --- the total -------------------------------------------------------------------------

    def _count(self) -> None:
        try:
            self.total = count_requests(self._jobs, self._stop_counting)
        finally:
            self.counting = False

    # --- drawing ---------------------------------------------------------------------------

    def _rates(self) -> tuple[float, float]:
        """Requests and bytes per second over the last RATE_WINDOW_S."""
        now = self._clock()
        samples = self._samples
        # A log line redraws the display too: sample at most every _SAMPLE_S.
        if not samples or now - samples[-1][0] >= _SAMPLE_S:
            samples.append((now, self.done, self.bytes))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        then, done, size = samples[0] if len(samples) > 1 else (self._started, 0, 0)
        span = now - then
        if span <= 0:
            return 0.0, 0.0
        return (self.done - done) / span, (self.bytes - size) / span

    def render(self) -> RenderableType:
        """The display: a bar with done / total and ETA (for a crawl: pages fetched / found,
        queued, depth), then rate, bytes and failures."""
        rate, byte_rate = self._rates()
        elapsed = self._clock() - self._started
        crawl = _crawl_of(self._run)
        if crawl is not None:
            bar, head = self._crawl_head(crawl.progress(), rate)
        else:
            bar, head = self._head(rate)
        top = Table.grid(padding=(0, 1))
        top.add_row(bar, head)

        stats = Text(f"{rate:,.1f} req/s  ", no_wrap=True, overflow="ellipsis")
        stats.append(f"{human_bytes(self.bytes)} ({human_bytes(byte_rate)}/s)  ")
        stats.append(f"elapsed {_clock(elapsed)}  ")
        failed = sum(self.failed.values())
        if failed:
            kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.failed.items()))
            stats.append(f"{failed:,} failed: {kinds}", style="red")
        else:
            stats.append("0 failed", style="green")
        return Group(top, stats)

    def _head(self, rate: float) -> tuple[ProgressBar, Text]:
        """Requests done / total, share and ETA, or done so far while the total is unknown."""
        skipped = self._run.skipped if self._run is not None else 0
        done = self.done + skipped
        total = self.total
        if total is not None and done > total:
            total = None  # more than counted: the input changed under us
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"{done:,}", style="bold")
        if total is not None:
            head.append(f"/{total:,} requests", style="bold")
            head.append(f"  {100 * done // total}%" if total else "  100%")
            if rate > 0 and total > done:
                head.append(f"  ETA {_clock((total - done) / rate)}", style="cyan")
        else:
            head.append(" requests")
            head.append("  (counting the total...)" if self.counting else "", style="dim")
        if skipped:
            head.append(f"  ({skipped:,} done before this resume)", style="dim")
        bar = ProgressBar(
            total=float(total) if total is not None else None,
            completed=done,
            width=30,
            pulse=total is None,
        )
        return bar, head

    def _crawl_head(self, crawl: CrawlProgress, rate: float) -> tuple[ProgressBar, Text]:
        """Pages fetched / pages found so far, the share, how many are queued, the depth
        being fetched, and the ETA once the frontier has stopped growing; then the other
        jobs' requests, if any."""
        fetched = self.pages + crawl.done_before
        found = max(crawl.pages, fetched)
        queued = found - fetched
        now = self._clock()
        if found != self._frontier_seen[0]:
            self._frontier_seen = (found, now)
        still = now - self._frontier_seen[1] >= FRONTIER_STILL_S
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"{fetched:,}/{found:,} pages", style="bold")
        head.append(f"  {100 * fetched // found}%" if found else "  0%")
        head.append(f"  {queued:,} queued  depth {crawl.depth}/{crawl.max_depth}")
        if crawl.growing and not still:
            head.append("  (finding more)", style="dim")
        elif rate > 0 and queued:
            head.append(f"  ETA {_clock(queued / rate)}", style="cyan")
        other = self.done - self.pages
        if other:
            head.append(f"  + {other:,} other requests")
        if crawl.done_before:
            head.append(f"  ({crawl.done_before:,} done before this resume)", style="dim")
        bar = ProgressBar(
            total=float(found) if found else None, completed=fetched, width=30, pulse=not found
        )
        return bar, head

    # --- running ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, run: _RunCounters | None = None) -> AsyncIterator[None]:
        """Show the display (and route log lines above it) for the length of the block;
        ``run`` tells how many requests a resumed run had done before."""
        self._run = run
        self._started = self._clock()
        if self._jobs:
            threading.Thread(target=self._count, name="crawler-count", daemon=True).start()
        live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=REDRAWS_PER_S,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        try:
            with live, routed_through(self.console):
                yield
        finally:
            self._stop_counting.set()
