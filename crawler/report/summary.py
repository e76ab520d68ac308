"""The run summary (C13): built from the run's totals, printed as one line and saved as JSON
under OUT/.crawler/runs/<run>.json with a copy in OUT/.crawler/last.json.

The totals (requests, ok, failed, by_kind, by_status, bytes, retries) come from the run state
and cover the whole run, resumed parts included. ``slowest_hosts`` comes from ``RunStats``,
which the runner feeds with each request finished by this invocation.
"""

from __future__ import annotations

import json
from typing import Any

from ..output.layout import Layout
from ..output.storage import Storage
from .stats import RunStats, SummaryStats

SLOWEST_HOSTS = 5


def build_summary(
    *,
    run: str,
    started_at: str,
    finished_at: str,
    duration_s: float,
    totals: dict[str, Any],
    this_invocation: int,
    exit_code: int,
    out: str,
    stats: RunStats | SummaryStats | None = None,
    crawl: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary as saved: the keys C13 names plus ``retries``, ``slowest_hosts``
    (by median elapsed_ms, of this invocation's requests) and ``out``; for a run with crawl
    jobs also ``by_depth`` (pages finished per link depth) and ``robots_blocked`` (URLs
    robots.txt kept out: ``disallowed`` by its rules, or ``unavailable``: its host's
    robots.txt failed), both over the whole run."""
    rate = this_invocation / duration_s if duration_s > 0 else 0.0
    summary: dict[str, Any] = {
        "run": run,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(duration_s, 3),
        **totals,
        "requests_this_invocation": this_invocation,
        "requests_per_s": round(rate, 1),
        "exit_code": exit_code,
        "out": out,
    }
    summary.setdefault("retries", stats.retries if stats else 0)
    summary["slowest_hosts"] = stats.slowest_hosts(SLOWEST_HOSTS) if stats else []
    if crawl is not None:
        summary.update(crawl)
    return summary


def human_bytes(size: float) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``, ..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_ms(ms: float) -> str:
    """``850 ms``, ``1.25 s``, ``2 min 5 s``, ``3 h 20 min``."""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the end of a run: counts, failures by kind, retries, bytes, duration,
    rate, the slowest host and where the results are."""
    failed = summary["failed"]
    kinds = ", ".join(f"{k} {v}" for k, v in summary["by_kind"].items())
    failed_text = f"{failed} failed ({kinds})" if failed else "0 failed"
    parts = [
        _plural(summary["requests"], "request"),
        f"{summary['ok']} ok",
        failed_text,
    ]
    retries = summary.get("retries")
    if retries:
        parts.append(_plural(retries, "retry").replace("retrys", "retries"))
    blocked = sum((summary.get("robots_blocked") or {}).values())
    if blocked:
        parts.append(f"{blocked} not fetched (robots.txt)")
    parts += [
        human_bytes(summary["bytes"]),
        f"{summary['duration_s']:.1f} s",
        f"{summary['requests_per_s']:.1f} req/s",
    ]
    slowest = summary.get("slowest_hosts") or []
    if len(slowest) > 1:
        host = slowest[0]
        parts.append(f"slowest host {host['host']} (median {human_ms(host['median_ms'])})")
    stopped = summary.get("stopped")
    if stopped:
        remaining = summary.get("remaining")
        left = f", {_plural(remaining, 'request')} not done" if remaining else ""
        head = f"run {summary['run']} STOPPED ({stopped}{left}; the next run resumes)"
        return f"{head}: {', '.join(parts)}; results so far in {summary['out']}"
    return f"run {summary['run']}: {', '.join(parts)}; results in {summary['out']}"


def save_summary(storage: Storage, summary: dict[str, Any]) -> None:
    data = (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
    layout = Layout(storage.out)
    storage.write_bytes(str(layout.summary(summary["run"]).relative_to(storage.out)), data)
    storage.write_bytes(str(layout.last.relative_to(storage.out)), data)
