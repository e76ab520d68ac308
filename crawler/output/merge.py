"""`crawler merge OUT [--shards N]` (C15): once every shard 0..N-1 under OUT/shards has
finished, rewrite OUT/manifest.jsonl from the latest run of each shard (each request once,
``path`` relative to OUT) and OUT/.crawler/last.json (the counts summed over the shards).
While a shard is missing, unfinished or running, nothing is written and the command names
those shards and exits 5.

A shard's latest run is read from its state: the newest run that finished (exit 0 or 1), and
no newer run left unfinished. Its lines are streamed, so memory grows only with one shard's
request keys (to keep each request once after a crash-and-resume wrote a line twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..errors import LocalError
from ..state.lock import FolderLock
from .layout import Layout, shard_name
from .manifest import iter_records
from .storage import replace_file

log = logging.getLogger(__name__)

_SHARD_DIR = re.compile(r"^(\d{1,9})-of-(\d{1,9})$")


@dataclass(frozen=True, slots=True)
class FinishedShard:
    index: int
    folder: Path
    run: str
    summary: dict[str, Any]


def shard_counts(out: Path) -> set[int]:
    """The N of every ``K-of-N`` folder under OUT/shards."""
    found = set()
    with contextlib.suppress(OSError):
        for entry in Layout(out).shards_root.iterdir():
            match = _SHARD_DIR.match(entry.name)
            if match and entry.is_dir() and int(match.group(1)) < int(match.group(2)):
                found.add(int(match.group(2)))
    return found


def _is_running(folder: Path) -> bool:
    """Whether a process holds the shard's lock now."""
    try:
        fd = os.open(Layout(folder).lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def latest_finished_run(folder: Path, since: str = "") -> str | None:
    """The shard's newest run if it finished (exit 0 or 1) and started at or after ``since``
    (ISO 8601 UTC as utc_now writes it: such strings sort as times do), else None. Read from
    the shard's state, never from its last.json: a run writes last.json just before its
    state records the end, so a shard killed in between has not finished."""
    path = Layout(folder).state
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute(
                "SELECT id, started_at, finished_at, exit_code FROM runs "
                "ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None or not row[2] or row[3] not in exitcodes.FINISHED or str(row[1]) < since:
        return None
    return str(row[0])


def check_shards(out: Path, count: int) -> tuple[list[FinishedShard], list[str]]:
    """The finished shards, and the problems of the others (``K-of-N (why)``)."""
    layout = Layout(out)
    finished: list[FinishedShard] = []
    problems: list[str] = []
    for k in range(count):
        folder = layout.shard(k, count).out
        name = shard_name(k, count)
        if not folder.is_dir():
            problems.append(f"{name} (missing)")
            continue
        if _is_running(folder):
            problems.append(f"{name} (running)")
            continue
        run = latest_finished_run(folder)
        summary: Any = None
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(Layout(folder).summary(run or "-").read_text("utf-8"))
        if run is None or not isinstance(summary, dict):
            problems.append(f"{name} (unfinished)")
            continue
        finished.append(FinishedShard(k, folder, run, summary))
    return finished, problems


def _request_id(record: dict[str, Any]) -> str:
    return str(record.get("key") or f"{record.get('method')} {record.get('url')}")


def _shard_lines(shard: FinishedShard, out: Path, count: int) -> Iterator[dict[str, Any]]:
    """The shard's latest run's manifest records, the last one per request, ``path`` made
    relative to OUT, in the order they were written. Two passes over the file: the first
    finds each request's last line, so memory holds keys, not records."""
    manifest = Layout(shard.folder).manifest
    if not manifest.is_file():
        return
    prefix = Path(os.path.relpath(shard.folder, out)).as_posix()
    last: dict[str, int] = {}
    for position, record in enumerate(iter_records(manifest, shard.run)):
        last[_request_id(record)] = position
    for position, record in enumerate(iter_records(manifest, shard.run)):
        if last.get(_request_id(record)) != position:
            continue
        if record.get("path"):
            record["path"] = f"{prefix}/{record['path']}"
        record["shard"] = shard_name(shard.index, count)
        yield record


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


class _Totals:
    """The C13 counts, added up line by line as the merged manifest is written."""

    def __init__(self) -> None:
        self.requests = self.ok = self.bytes = self.retries = 0
        self.by_kind: dict[str, int] = {}
        self.by_status: dict[str, int] = {}

    def add(self, record: dict[str, Any]) -> None:
        self.requests += 1
        if record.get("ok"):
            self.ok += 1
        else:
            kind = str((record.get("error") or {}).get("kind") or "unknown")
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if record.get("status") is not None:
            status = str(record["status"])
            self.by_status[status] = self.by_status.get(status, 0) + 1
        self.bytes += int(record.get("bytes") or 0)
        self.retries += max(int(record.get("attempts") or 0) - 1, 0)


def merged_summary(
    out: Path, run: str, shards: list[FinishedShard], totals: _Totals
) -> dict[str, Any]:
    """The C13 summary of the merged run: counted from the merged manifest lines, so every
    number agrees with them; times from the shards' own summaries."""
    starts = [str(s.summary.get("started_at", "")) for s in shards]
    ends = [str(s.summary.get("finished_at", "")) for s in shards]
    started_at, finished_at = min(starts, default=""), max(ends, default="")
    start, end = _parse_time(started_at), _parse_time(finished_at)
    duration = max((end - start).total_seconds(), 0.0) if start and end else 0.0
    failed = totals.requests - totals.ok
    count = len(shards)
    return {
        "run": run,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(duration, 3),
        "requests": totals.requests,
        "ok": totals.ok,
        "failed": failed,
        "bytes": totals.bytes,
        "retries": totals.retries,
        "by_kind": dict(sorted(totals.by_kind.items())),
        "by_status": dict(sorted(totals.by_status.items())),
        "requests_per_s": round(totals.requests / duration, 1) if duration > 0 else 0.0,
        "exit_code": exitcodes.FAILED if failed else exitcodes.OK,
        "out": str(out),
        "shards": count,
        "runs": [s.run for s in shards],
        "shard_runs": {shard_name(s.index, count): s.run for s in shards},
    }


def merge(out: Path, count: int, run: str) -> dict[str, Any]:
    """Write the merged manifest and summary; returns the summary. The shards must have been
    checked (``check_shards``)."""
    shards, problems = check_shards(out, count)
    if problems:
        raise RuntimeError(f"shards not finished: {', '.join(problems)}")
    layout = Layout(out)
    layout.runs.mkdir(parents=True, exist_ok=True)
    totals = _Totals()
    fd, temp = tempfile.mkstemp(dir=out, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            for shard in shards:
                for record in _shard_lines(shard, out, count):
                    handle.write(_line(record))
                    totals.add(record)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, layout.manifest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    summary = merged_summary(out, run, shards, totals)
    data = (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
    for path in (layout.summary(run), layout.last):
        replace_file(path, data)
    return summary


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
        "utf-8", "backslashreplace"
    )


def merge_command(
    out: Path,
    count: int | None,
    *,
    locked: bool = False,
    metrics: tuple[Path, str] | None = None,
) -> int:
    """`crawler merge`: its exit code (0, 1, 2, 3 via OutputBusyError, 4 or 5)."""
    from ..report.summary import summary_line
    from ..run.runner import new_run_id

    if count is None:
        found = shard_counts(out)
        if not found:
            print(f"crawler: merge: no shard folders in {Layout(out).shards_root}", file=sys.stderr)
            return exitcodes.USAGE
        if len(found) > 1:
            counts = ", ".join(str(n) for n in sorted(found))
            print(
                f"crawler: merge: {Layout(out).shards_root} holds shards of N = {counts}; "
                "give --shards N",
                file=sys.stderr,
            )
            return exitcodes.USAGE
        count = found.pop()
    _, problems = check_shards(out, count)
    if problems:
        print(
            f"crawler: merge: cannot merge {out}: not every shard has finished: "
            f"{', '.join(problems)}",
            file=sys.stderr,
        )
        return exitcodes.SHARD_MISSING
    lock = None
    if not locked:
        Layout(out).private.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(out)
        lock.acquire()
    try:
        summary = merge(out, count, new_run_id())
    except OSError as exc:
        raise LocalError(f"cannot write the merged results in {out}: {exc}") from exc
    finally:
        if lock is not None:
            lock.release()
    print(summary_line(summary), file=sys.stderr)
    if metrics is not None:
        from ..report.metrics import write_metrics

        try:
            write_metrics(metrics[0], summary, metrics[1])
        except OSError as exc:
            print(f"crawler: cannot write metrics {metrics[0]}: {exc}", file=sys.stderr)
    return int(summary["exit_code"])
