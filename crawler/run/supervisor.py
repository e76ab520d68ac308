"""`crawler run --workers N` (C15): N shard processes on this machine, then `merge`.

Each child is a new interpreter (``sys.executable -m crawler run JOB --shard K/N``), never a
fork of a process with an event loop. The supervisor holds OUT's own lock, so a second
supervisor on the same folder exits 3, and records in OUT/.crawler/workers.json when its run
started: a shard whose last run finished (exit 0 or 1) since then is done, so after an early
stop (kill -9 of the whole group included) the same command resumes only the unfinished
shards, and after a finished run (merge done) it starts a new run of every shard.

Signals: the first SIGINT or SIGTERM asks every child to stop as on SIGTERM (finish what is in
flight, up to the grace period); a second SIGINT cancels at once. A child that stops early
(3, 4, 130, 143, or anything but 0 and 1) stops the others the same way and its code is the
supervisor's; otherwise the merge's code is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from .. import exitcodes
from ..config.spec import JobFile
from ..output.layout import Layout
from ..output.manifest import utc_now
from ..output.merge import latest_finished_run
from ..output.storage import replace_file
from ..state.lock import FolderLock

log = logging.getLogger(__name__)

WORKERS_FILE = "workers.json"
_POLL_S = 0.2


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask (taskset, cpusets), lowered to a
    cgroup v2 CPU limit (a container's ``--cpus``), rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def shares(total: int, count: int) -> list[int]:
    """``total`` split into ``count`` whole shares that add up to it, differing by at most 1."""
    base, extra = divmod(total, count)
    return [base + (1 if k < extra else 0) for k in range(count)]


def shard_finished_since(folder: Path, since: str) -> bool:
    """Whether the shard in ``folder`` finished a run (exit 0 or 1) that started at or after
    ``since`` (ISO 8601 UTC, as utc_now writes it), judged as `crawler merge` judges it: by
    the shard's state, not its last.json (written just before the state records the end, so
    a kill in between would leave a shard that this skips and merge refuses, every time)."""
    return latest_finished_run(folder, since) is not None


class Supervisor:
    def __init__(self, args: argparse.Namespace, job_file: JobFile, count: int) -> None:
        self.args = args
        self.job_file = job_file
        self.count = count
        self.out: Path = (args.out or job_file.output).absolute()
        self.concurrency: int = args.concurrency or job_file.concurrency
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.stop_signal: int | None = None

    def run(self) -> int:
        problem = self._usage_problem()
        if problem is not None:  # refused before OUT is touched, as each child would refuse
            print(f"crawler: {problem}", file=sys.stderr)
            return exitcodes.USAGE
        layout = Layout(self.out)
        layout.private.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(self.out)
        lock.acquire()  # OutputBusyError (exit 3) when another supervisor has this folder
        try:
            record, fresh = self._workers_run(layout)
            pending = [
                k
                for k in range(self.count)
                if not shard_finished_since(layout.shard(k, self.count).out, record["started_at"])
            ]
            done = self.count - len(pending)
            if done:
                log.warning(
                    "resuming: %d of %d shards finished already; running %s",
                    done,
                    self.count,
                    ", ".join(f"{k}-of-{self.count}" for k in pending) or "none",
                )
            code = self._run_children(pending, fresh)
            if code is not None:
                self._write_stopped(layout, record, code)
                return code
            from ..output.merge import merge_command

            code = merge_command(self.out, self.count, locked=True, metrics=self._metrics_args())
            if code in exitcodes.FINISHED:
                record["status"] = "finished"
                record["finished_at"] = utc_now()
                _write_json(layout.private / WORKERS_FILE, record)
            return code
        finally:
            lock.release()

    def _usage_problem(self) -> str | None:
        """What the children would refuse as a usage error (exit 2) whatever their shard."""
        if self.args.shard_by == "url" and self.job_file.per_host < self.count:
            return (
                f"--shard-by url: per_host ({self.job_file.per_host}) is below the number of "
                f"workers ({self.count}): each shard would get less than one request per host; "
                "raise per_host or use --shard-by host"
            )
        return None

    def _write_stopped(self, layout: Layout, record: dict[str, Any], code: int) -> None:
        """OUT/.crawler/last.json for a --workers run that stopped early: it says so (C17),
        with the counts the shards' own summaries give so far, never an older clean run."""
        totals: dict[str, Any] = {"requests": 0, "ok": 0, "failed": 0, "bytes": 0}
        by_kind: dict[str, int] = {}
        runs = []
        for k in range(self.count):
            try:
                last = json.loads(layout.shard(k, self.count).last.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(last, dict) or str(last.get("started_at", "")) < record["started_at"]:
                continue
            runs.append(str(last.get("run")))
            for key in totals:
                totals[key] += int(last.get(key) or 0)
            for kind, count in (last.get("by_kind") or {}).items():
                by_kind[kind] = by_kind.get(kind, 0) + int(count)
        reason = (
            signal.Signals(self.stop_signal).name
            if self.stop_signal is not None
            else f"a shard stopped with exit code {code}"
        )
        summary = {
            "run": f"workers-{record['started_at']}",
            "started_at": record["started_at"],
            "finished_at": utc_now(),
            **totals,
            "by_kind": by_kind,
            "exit_code": code,
            "stopped": reason,
            "shards": self.count,
            "runs": runs,
            "out": str(self.out),
        }
        with contextlib.suppress(OSError):
            _write_json(layout.last, summary)

    def _metrics_args(self) -> tuple[Path, str] | None:
        metrics = getattr(self.args, "metrics", None)
        return (metrics, Path(self.args.job).stem) if metrics is not None else None

    def _workers_run(self, layout: Layout) -> tuple[dict[str, Any], bool]:
        """The workers run to continue, or a new one; and whether children start fresh."""
        path = layout.private / WORKERS_FILE
        try:
            record = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            record = None
        resumable = (
            isinstance(record, dict)
            and record.get("status") == "running"
            and record.get("shards") == self.count
            and record.get("shard_by") == self.args.shard_by
            and not self.args.fresh
        )
        if resumable and isinstance(record, dict):
            log.warning("resuming the unfinished --workers run in %s", self.out)
            return record, False
        record = {
            "shards": self.count,
            "shard_by": self.args.shard_by,
            "started_at": utc_now(),
            "status": "running",
        }
        _write_json(path, record)
        return record, bool(self.args.fresh)

    def _command(self, shard: int, concurrency: int, fresh: bool) -> list[str]:
        args = self.args
        command = [sys.executable, "-m", "crawler", "run", str(args.job)]
        command += ["--shard", f"{shard}/{self.count}", "--shard-by", args.shard_by]
        command += ["-o", str(self.out), "-c", str(concurrency), "--no-progress"]
        command += ["--log-format", args.log_format]
        if args.quiet:
            command.append("-q")
        if fresh:
            command.append("--fresh")
        return command

    def _run_children(self, pending: list[int], fresh: bool) -> int | None:
        """Run the pending shards to their end; the code to exit with when one (or this
        process) stopped early, else None."""
        share = shares(self.concurrency, self.count)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        early: int | None = None
        display: _ProgressLine | None = None
        try:
            for k in pending:
                if self.stop_signal is not None:
                    break
                self.children[k] = subprocess.Popen(self._command(k, share[k], fresh))
            running = dict(self.children)
            display = _ProgressLine(self.out, self.count) if self._progress_wanted() else None
            while running:
                time.sleep(_POLL_S)
                if display is not None:
                    display.show(len(running))
                for k, child in list(running.items()):
                    code = child.poll()
                    if code is None:
                        continue
                    del running[k]
                    if code not in exitcodes.FINISHED and early is None:
                        early = code
                        if self.stop_signal is None:  # else it stopped because it was asked
                            log.error(
                                "shard %d-of-%d stopped with exit code %d; stopping the others",
                                k,
                                self.count,
                                code,
                            )
                        self._signal_children(signal.SIGTERM)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if display is not None:
                display.close()
        if self.stop_signal is not None:
            return exitcodes.BY_SIGNAL[signal.Signals(self.stop_signal)]
        return early

    def _progress_wanted(self) -> bool:
        """One combined line at a terminal (the children show none), as `run` decides."""
        wanted = self.args.progress if self.args.progress is not None else sys.stderr.isatty()
        return bool(wanted) and not self.args.quiet

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            log.warning(
                "%s: stopping %d shard process(es); the same command resumes",
                signal.Signals(signum).name,
                len(self.children),
            )
            # As on SIGTERM for every child. At a terminal they got the SIGINT themselves
            # too; a SIGTERM after it changes nothing, a second SIGINT would cancel at once.
            self._signal_children(signal.SIGTERM)
        elif signum == signal.SIGINT:
            self._signal_children(signal.SIGINT)

    def _signal_children(self, sig: signal.Signals) -> None:
        for child in self.children.values():
            if child.poll() is None:
                try:
                    child.send_signal(sig)
                except ProcessLookupError:
                    pass


class _ProgressLine:
    """Requests finished so far across the shards, from the growth of their manifests (read
    incrementally: only new bytes are counted), redrawn in place on stderr."""

    def __init__(self, out: Path, count: int) -> None:
        self._manifests = [Layout(out).shard(k, count).manifest for k in range(count)]
        self._offsets = [self._size(path) for path in self._manifests]
        self._lines = [0] * count
        self._failed = [0] * count
        self._started = time.monotonic()
        self._count = count

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    def _read(self, k: int) -> None:
        try:
            with self._manifests[k].open("rb") as handle:
                handle.seek(self._offsets[k])
                data = handle.read(16 << 20)
        except OSError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        self._offsets[k] += len(whole)
        self._lines[k] += whole.count(b"\n")
        self._failed[k] += whole.count(b'"ok":false')

    def show(self, running: int) -> None:
        for k in range(self._count):
            self._read(k)
        done, failed = sum(self._lines), sum(self._failed)
        rate = done / max(time.monotonic() - self._started, 1e-6)
        per_shard = " ".join(f"{k}:{n}" for k, n in enumerate(self._lines))
        line = (
            f"workers {running}/{self._count} running: {done} done, {failed} failed, "
            f"{rate:.0f} req/s  [{per_shard}]"
        )
        sys.stderr.write(f"\r\x1b[2K{line[:200]}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    replace_file(path, (json.dumps(data, indent=2) + "\n").encode())
