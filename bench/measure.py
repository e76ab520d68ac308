"""Run one client process and measure it: wall time, user+sys CPU of its process tree
(os.wait4's rusage covers the process and every descendant it waited for), peak RSS (see
PeakWatcher), and whether every file it wrote holds the right content."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One round of one client."""

    wall_s: float
    cpu_s: float  # user + sys
    sys_s: float
    maxrss_kib: int
    exit_code: int
    server_cpu_s: float = 0.0
    problem: str | None = None  # why the correctness check failed
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Running:
    """A started client: wait() reaps it and returns its Sample (without the check)."""

    proc: subprocess.Popen[bytes]
    started: float
    server_cpu: Callable[[], float]
    server_cpu_at_start: float
    timeout_s: float

    def wait(self) -> Sample:
        killer = threading.Timer(self.timeout_s, self._kill)
        killer.start()
        peak = PeakWatcher(self.proc.pid)
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            killer.cancel()
            peak.stop()
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return Sample(
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            sys_s=usage.ru_stime,
            maxrss_kib=peak.kib or usage.ru_maxrss,
            exit_code=self.proc.returncode,
            server_cpu_s=self.server_cpu() - self.server_cpu_at_start,
        )

    def _kill(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class PeakWatcher:
    """The process's peak RSS (VmHWM), read every few milliseconds until stop().

    Not ru_maxrss: a child's ru_maxrss starts at the RSS of the process that forked it, so it
    would report the bench's own memory for any client smaller than the bench. VmHWM belongs
    to the memory map the client's exec created; it only grows, so the last reading before
    the exit is the peak, short of what the last few milliseconds add."""

    INTERVAL_S = 0.005

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._read()
            self._stop.wait(self.INTERVAL_S)

    def _read(self) -> None:
        try:
            text = self.status.read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                self.kib = max(self.kib, int(line.split()[1]))
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start(
    argv: list[str],
    log_dir: Path,
    server_cpu: Callable[[], float],
    timeout_s: float,
    cwd: Path | None = None,
) -> Running:
    """Start ``argv`` with stdout and stderr in ``log_dir``; the clock starts just before."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "argv.json").write_text(json.dumps(argv) + "\n")
    with (log_dir / "stdout").open("wb") as out, (log_dir / "stderr").open("wb") as err:
        cpu_before = server_cpu()
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd)
    return Running(proc, started, server_cpu, cpu_before, timeout_s)


def alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` still runs, without reaping it (os.wait4 must get its rusage)."""
    found = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return found is None


def stderr_tail(log_dir: Path, limit: int = 300) -> str:
    try:
        text = (log_dir / "stderr").read_text(errors="replace").strip()
    except OSError:
        return ""
    return " ".join(text[-limit:].split())


# --- correctness ---------------------------------------------------------------------------


def check_files(
    expected: Mapping[str, Path], written: Mapping[str, Path], as_json: bool = False
) -> str | None:
    """None when every URL in ``expected`` (URL -> the server's file) has a written file with
    the same bytes (or, ``as_json``, the same parsed JSON); else what is wrong, briefly."""
    missing = wrong = 0
    example = ""
    for url, source in expected.items():
        target = written.get(url)
        try:
            data = target.read_bytes() if target is not None else None
        except OSError:
            data = None
        if data is None:
            missing += 1
            example = example or f"no file for {url}"
        elif not _same(source.read_bytes(), data, as_json):
            wrong += 1
            example = example or f"wrong content in {target}"
    if not missing and not wrong:
        return None
    return f"{missing} missing, {wrong} wrong of {len(expected)} ({example})"


def _same(expected: bytes, actual: bytes, as_json: bool) -> bool:
    if not as_json:
        return expected == actual
    try:
        return bool(json.loads(expected) == json.loads(actual))
    except ValueError:
        return False


# --- summaries -----------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))
