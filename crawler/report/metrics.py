"""`crawler run --metrics FILE`: the last run in Prometheus's text exposition format, for
node_exporter's textfile collector. The file is written under a temporary name in the same
folder (one that does not end in .prom, so the collector skips it) and renamed over FILE, so
a scrape never sees half a file.

Every value is a gauge describing the last run. Two timestamps outlive a failing run (they
are carried over from the previous FILE), so an alert can say "no successful run for a day".
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..outcome import KINDS
from ..output.storage import replace_file

# The error kinds of C8: each is written, 0 included, so a query never misses a series.
ERROR_KINDS = tuple(str(kind) for kind in KINDS)

SUCCESS = "crawler_last_success_timestamp_seconds"
COMPLETED = "crawler_last_completed_timestamp_seconds"

# name, help; all gauges.
_HELP = {
    "crawler_last_run_start_timestamp_seconds": "Start of the last run, unix time.",
    "crawler_last_run_end_timestamp_seconds": "End of the last run, unix time.",
    "crawler_last_run_duration_seconds": "Duration of the last invocation of crawler run.",
    "crawler_last_run_exit_code": "Exit code of the last run (0: every request succeeded).",
    SUCCESS: "End of the last run that exited 0, unix time; 0 if none yet.",
    COMPLETED: "End of the last run that finished (exit 0 or 1), unix time; 0 if none yet.",
    "crawler_last_run_requests": "Requests of the last run by outcome.",
    "crawler_last_run_failures": "Failed requests of the last run by error kind.",
    "crawler_last_run_responses": "Responses of the last run by HTTP status.",
    "crawler_last_run_bytes": "Bytes saved by the last run.",
    "crawler_last_run_retries": "Retries made by the last run.",
}


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


def unix_time(iso: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 UTC time as the manifest writes it; 0 if None."""
    if not iso:
        return 0.0
    return datetime.fromisoformat(iso).timestamp()


def previous_timestamps(path: Path) -> dict[str, float]:
    """The success and completion timestamps in an earlier metrics file, if any."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^(\w+)(?:\{[^}]*\})?\s+(\S+)", line)
            if match and match.group(1) in (SUCCESS, COMPLETED):
                with contextlib.suppress(ValueError):
                    found[match.group(1)] = float(match.group(2))
    return found


def render_metrics(
    summary: Mapping[str, Any], crawl: str, previous: Mapping[str, float] | None = None
) -> str:
    """The exposition text for one run's ``summary`` (the keys of C13; a summary of a run that
    did not start needs only started_at, finished_at, duration_s and exit_code).
    ``crawl`` labels every series, so several crawls can share one collector folder."""
    previous = previous or {}
    base = f'crawl="{_escape(crawl)}"'
    exit_code = int(summary["exit_code"])
    end = unix_time(summary.get("finished_at"))
    samples: list[tuple[str, str, float]] = [
        ("crawler_last_run_start_timestamp_seconds", "", unix_time(summary.get("started_at"))),
        ("crawler_last_run_end_timestamp_seconds", "", end),
        ("crawler_last_run_duration_seconds", "", float(summary.get("duration_s") or 0)),
        ("crawler_last_run_exit_code", "", exit_code),
        (SUCCESS, "", end if exit_code == exitcodes.OK else previous.get(SUCCESS, 0)),
        (COMPLETED, "", end if exit_code in exitcodes.FINISHED else previous.get(COMPLETED, 0)),
        ("crawler_last_run_requests", 'outcome="ok"', int(summary.get("ok") or 0)),
        ("crawler_last_run_requests", 'outcome="failed"', int(summary.get("failed") or 0)),
    ]
    by_kind: Mapping[str, int] = summary.get("by_kind") or {}
    for kind in sorted({*ERROR_KINDS, *by_kind}):
        samples.append(
            ("crawler_last_run_failures", f'kind="{_escape(kind)}"', by_kind.get(kind, 0))
        )
    by_status: Mapping[str, int] = summary.get("by_status") or {}
    for status, count in sorted(by_status.items()):
        samples.append(("crawler_last_run_responses", f'status="{_escape(status)}"', count))
    samples += [
        ("crawler_last_run_bytes", "", int(summary.get("bytes") or 0)),
        ("crawler_last_run_retries", "", int(summary.get("retries") or 0)),
    ]
    return "".join(_lines(samples, base))


def _lines(samples: Iterable[tuple[str, str, float]], base: str) -> Iterable[str]:
    described: set[str] = set()
    for name, labels, value in samples:
        if name not in described:
            described.add(name)
            yield f"# HELP {name} {_HELP[name]}\n# TYPE {name} gauge\n"
        yield f"{name}{{{base}{',' + labels if labels else ''}}} {_number(value)}\n"


def write_metrics(path: Path, summary: Mapping[str, Any], crawl: str) -> None:
    """Write ``path`` atomically (temp file in its folder, then rename), readable by the
    collector's user. Raises OSError when the folder refuses."""
    text = render_metrics(summary, crawl, previous_timestamps(path))
    replace_file(path, text.encode(), fsync=True)
