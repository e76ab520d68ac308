"""Aggregates of finished requests in bounded memory, for the summary and the HTML report:
counts by outcome, error kind and status, per-host totals, a log-scale latency histogram for
percentiles, and requests finished per second. Pure: no I/O.

A run may have millions of requests, so nothing here keeps one entry per request: latency
goes into log-scale buckets (about 2.5 % wide, so a percentile is off by at most that), the
per-second series has one entry per second of the run, the host table is capped at
``MAX_HOSTS`` hosts (the rest are pooled), and only the first ``MAX_FAILURES`` failures are
kept with their reasons.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..output.manifest import Record

# Bucket i of the latency histogram holds elapsed_ms in (_BASE**(i-1), _BASE**i]; bucket 0
# holds everything up to 1 ms.
_BASE = 1.05
_LOG_BASE = math.log(_BASE)

MAX_HOSTS = 10_000
OTHER_HOSTS = "(other hosts)"
MAX_FAILURES = 200
MAX_REASONS = 1_000
OTHER_REASONS = "(other reasons)"

# Display bins of the latency chart: upper edges in ms, a 1-2-5 series people read at a glance.
LATENCY_EDGES_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """``host`` or ``host:port`` (when not the scheme's default) of a URL; ``(invalid URL)``
    when it has none."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(invalid URL)"
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop, 0, end)
        if at >= 0:
            end = at
    return _host_of(scheme.lower(), rest[:end])


@functools.lru_cache(maxsize=16_384)
def _host_of(scheme: str, netloc: str) -> str:
    try:
        parts = urlsplit(f"{scheme}://{netloc}/")
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if not host:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


class LatencyHistogram:
    """Log-scale histogram of elapsed_ms with exact count, sum and max."""

    __slots__ = ("buckets", "count", "max_ms", "total_ms")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        self.buckets[math.ceil(math.log(ms) / _LOG_BASE) if ms >= 1 else 0] += 1
        self.count += 1
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in ms, to within one bucket; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                if index == 0:
                    return min(1.0, self.max_ms)
                # The geometric middle of the bucket, never above the largest value seen.
                return min(float(_BASE ** (index - 0.5)), self.max_ms)
        return self.max_ms


@dataclass(slots=True)
class HostStats:
    requests: int = 0
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True, slots=True)
class Failure:
    url: str
    job: str
    kind: str
    message: str
    status: int | None
    attempts: int
    referrer: str | None = None  # crawl mode: the page that linked here


@dataclass(slots=True)
class Totals:
    """Counts of one group of requests: a job, or the pages of one crawl depth."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    unchanged: int = 0  # 304 Not Modified on a conditional refetch: the kept file
    bytes: int = 0
    retries: int = 0

    def add(self, ok: bool, status: int | None, size: int | None, attempts: int) -> None:
        self.requests += 1
        if ok:
            self.ok += 1
            if status == 304:
                self.unchanged += 1
        else:
            self.failed += 1
        self.bytes += size or 0
        self.retries += max(attempts - 1, 0)


@dataclass(slots=True)
class RunStats:
    """Everything the summary and the report show, fed one finished request at a time."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    retries: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_job: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency_bins: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    # Requests finished per second, keyed by the first 19 characters of fetched_at
    # ("YYYY-MM-DDTHH:MM:SS"): (ok, failed).
    per_second: dict[str, list[int]] = field(default_factory=dict)
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # (kind, message) -> [count, an example URL]
    reasons: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # Per job, and per link depth (crawl mode: the lines with a ``depth``): few entries each.
    jobs: dict[str, Totals] = field(default_factory=dict)
    depths: dict[int, Totals] = field(default_factory=dict)
    unchanged: int = 0  # ok with status 304: a conditional refetch kept the file

    def add(
        self,
        *,
        url: str,
        job: str,
        ok: bool,
        status: int | None,
        size: int | None,
        elapsed_ms: float,
        attempts: int,
        error: dict[str, Any] | None,
        fetched_at: str | None,
        depth: int | None = None,
        referrer: str | None = None,
    ) -> None:
        self.requests += 1
        self.by_job[job] += 1
        self.retries += max(attempts - 1, 0)
        self.bytes += size or 0
        if status is not None:
            self.by_status[str(status)] += 1
        if ok and status == 304:
            self.unchanged += 1
        totals = self.jobs.get(job)
        if totals is None:
            totals = self.jobs[job] = Totals()
        totals.add(ok, status, size, attempts)
        if depth is not None:
            at_depth = self.depths.get(depth)
            if at_depth is None:
                at_depth = self.depths[depth] = Totals()
            at_depth.add(ok, status, size, attempts)
        if attempts:  # a request never sent (invalid_url, host_down) has no latency
            self.latency.add(elapsed_ms)
            self.latency_bins[bisect.bisect_left(LATENCY_EDGES_MS, elapsed_ms)] += 1
        if ok:
            self.ok += 1
        else:
            self.failed += 1
            kind = str((error or {}).get("kind") or "unknown")
            message = str((error or {}).get("message") or "")
            self.by_kind[kind] += 1
            if len(self.failures) < MAX_FAILURES:
                failure = Failure(url, job, kind, message, status, attempts, referrer)
                self.failures.append(failure)
            self._add_reason(kind, message, url)
        if fetched_at:
            second = self.per_second.get(fetched_at[:19])
            if second is None:
                second = self.per_second[fetched_at[:19]] = [0, 0]
            second[0 if ok else 1] += 1
        if attempts:  # a request never sent (invalid_url, host_down) has no latency
            self._add_host(host_of(url), ok, size or 0, elapsed_ms)

    def add_record(self, record: Record) -> None:
        """Add one request as the runner records it."""
        self.add(
            url=record.url,
            job=record.job,
            ok=record.ok,
            status=record.status,
            size=record.bytes,
            elapsed_ms=_latency_ms(record.fetch_ms, record.elapsed_ms),
            attempts=record.attempts,
            error=record.error,
            fetched_at=record.fetched_at,
            depth=record.depth,
            referrer=record.referrer,
        )

    def add_line(self, record: dict[str, Any]) -> None:
        """Add one manifest line (as parsed JSON)."""
        self.add(
            url=str(record.get("url") or ""),
            job=str(record.get("job") or ""),
            ok=bool(record.get("ok")),
            status=record.get("status"),
            size=record.get("bytes"),
            elapsed_ms=_latency_ms(record.get("fetch_ms"), record.get("elapsed_ms")),
            attempts=_attempts(record.get("attempts")),
            error=record.get("error"),
            fetched_at=record.get("fetched_at"),
            depth=_depth(record.get("depth")),
            referrer=_text_or_none(record.get("referrer")),
        )

    def _add_reason(self, kind: str, message: str, url: str) -> None:
        reason = self.reasons.get((kind, message))
        if reason is None:
            if len(self.reasons) >= MAX_REASONS:
                message = OTHER_REASONS
                reason = self.reasons.get((kind, message))
            if reason is None:
                reason = self.reasons[(kind, message)] = [0, url]
        reason[0] += 1

    def _add_host(self, host: str, ok: bool, size: int, elapsed_ms: float) -> None:
        _add_host(self.hosts, host, ok, size, elapsed_ms)

    @property
    def failures_not_kept(self) -> int:
        return self.failed - len(self.failures)

    def slowest_hosts(self, limit: int = 5) -> list[dict[str, Any]]:
        """The hosts with the highest median elapsed_ms, slowest first."""
        return _slowest_hosts(self.hosts, limit)


def _add_host(
    hosts: dict[str, HostStats], host: str, ok: bool, size: int, elapsed_ms: float
) -> None:
    stats = hosts.get(host)
    if stats is None:
        if len(hosts) >= MAX_HOSTS:
            host = OTHER_HOSTS
            stats = hosts.get(host)
        if stats is None:
            stats = hosts[host] = HostStats()
    stats.requests += 1
    stats.bytes += size
    if ok:
        stats.ok += 1
    else:
        stats.failed += 1
    stats.latency.add(elapsed_ms)


def _slowest_hosts(hosts: dict[str, HostStats], limit: int) -> list[dict[str, Any]]:
    ranked = sorted(
        ((h, s) for h, s in hosts.items() if h != OTHER_HOSTS),
        key=lambda item: (-item[1].latency.quantile(0.5), item[0]),
    )
    return [
        {
            "host": host,
            "requests": stats.requests,
            "failed": stats.failed,
            "median_ms": round(stats.latency.quantile(0.5), 1),
            "max_ms": round(stats.latency.max_ms, 1),
        }
        for host, stats in ranked[:limit]
    ]


def _latency_ms(fetch_ms: object, elapsed_ms: object) -> float:
    """What latency figures measure: the time in attempts (``fetch_ms``), not the waits
    before retries; ``elapsed_ms`` for a manifest written before fetch_ms existed."""
    value = fetch_ms if isinstance(fetch_ms, int | float) else elapsed_ms
    return float(value) if isinstance(value, int | float) else 0.0


def _depth(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _attempts(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 1


@dataclass(slots=True)
class SummaryStats:
    """What the run summary needs from each finished request, and no more: retries and
    per-host latency. RunStats (the report's) does several times the work per request."""

    retries: int = 0
    hosts: dict[str, HostStats] = field(default_factory=dict)

    def add_record(self, record: Record) -> None:
        if record.attempts > 1:
            self.retries += record.attempts - 1
        if record.attempts:  # a request never sent (invalid_url, host_down) has no latency
            latency = _latency_ms(record.fetch_ms, record.elapsed_ms)
            _add_host(self.hosts, host_of(record.url), record.ok, record.bytes or 0, latency)

    def slowest_hosts(self, limit: int = 5) -> list[dict[str, Any]]:
        """The hosts with the highest median elapsed_ms, slowest first."""
        return _slowest_hosts(self.hosts, limit)
