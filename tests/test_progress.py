"""The live progress display (C13): what it shows, the total counted in the background, and
the real command under a pseudo-terminal: redraws with done / total, log lines intact."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import sqlite3
import struct
import termios
import threading
import time

import pytest
from rich.console import Console

from crawler.config.jobfile import load_job_file
from crawler.output.manifest import Record
from crawler.progress import Progress, count_requests
from crawler.run.runner import Run, RunOptions

from .conftest import CRAWLER_BIN, crawler_cli, read_manifest, run_job

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _record(ok: bool = True, kind: str | None = None, size: int = 100) -> Record:
    return Record(
        run="r",
        job="j",
        method="GET",
        url="http://example.org/",
        final_url=None,
        status=200 if ok else 404,
        ok=ok,
        path=None,
        bytes=size if ok else None,
        sha256=None,
        content_type=None,
        charset=None,
        elapsed_ms=1.0,
        attempts=1,
        error=None if ok else {"kind": kind or "http", "message": "HTTP 404"},
        fetched_at="2024-01-01T00:00:00.000Z",
        key="k",
    )


def _text(progress: Progress) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(progress.render())
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_display_shows_done_total_rate_bytes_failures_and_eta():
    clock = Clock()
    progress = Progress(io.StringIO(), clock=clock)
    progress.total = 100
    assert "0/100 requests" in _text(progress)
    clock.now += 2
    for _ in range(18):
        progress.update(_record(size=1024))
    progress.update(_record(ok=False, kind="http"))
    progress.update(_record(ok=False, kind="timeout"))
    text = _text(progress)
    assert "20/100 requests  20%" in text
    assert "10.0 req/s" in text
    assert "18.0 KiB" in text
    assert "ETA 0:08" in text  # 80 to go at 10 a second
    assert "2 failed: http 1, timeout 1" in text


def test_unknown_total_is_shown_gracefully():
    progress = Progress(io.StringIO(), clock=Clock())
    progress.counting = True
    progress.update(_record())
    text = _text(progress)
    assert "1 requests" in text and "counting the total" in text
    assert "ETA" not in text and "/" not in text.split("requests")[0]
    progress.counting = False
    assert "counting" not in _text(progress)


def test_more_done_than_counted_drops_the_total():
    progress = Progress(io.StringIO(), clock=Clock())
    progress.total = 1
    progress.update(_record())
    progress.update(_record())
    assert "2 requests" in _text(progress)


def test_resumed_run_counts_what_was_done_before():
    class Resumed:
        skipped = 40

    progress = Progress(io.StringIO(), clock=Clock())
    progress.total = 50
    progress._run = Resumed()
    progress.update(_record())
    text = _text(progress)
    assert "41/50 requests" in text and "40 done before this resume" in text


def test_update_only_counts():
    """The per-request hook touches counters only: a million calls take a fraction of a
    second (two allowed for a loaded machine)."""
    progress = Progress(io.StringIO())
    ok, bad = _record(), _record(ok=False)
    started = time.perf_counter()
    for _ in range(500_000):
        progress.update(ok)
        progress.update(bad)
    assert time.perf_counter() - started < 2.0
    assert progress.done == 1_000_000 and progress.failed == {"http": 500_000}


def test_count_requests(write_job, tmp_path):
    (tmp_path / "urls.txt").write_text(
        "\ufeff# a comment\nhttp://a.test/1\n\n   \nhttp://a.test/2\n  # indented comment\n"
        "not a url\nhttp://a.test/3",
        encoding="utf-8",
    )
    job = write_job("""
        version: 1
        jobs:
          - {name: one, url: "http://a.test/x"}
          - {name: list, urls: ["http://a.test/y", "http://a.test/z"]}
          - {name: file, urls_file: urls.txt}
    """)
    jobs = load_job_file(job).jobs
    assert count_requests(jobs) == 1 + 2 + 4
    stop = threading.Event()
    stop.set()
    assert count_requests(jobs[:2], stop) == 3  # no file: nothing to stop
    crawl = write_job(
        """
        version: 1
        jobs:
          - {name: c, url: "http://a.test/", follow: {depth: 1}}
        """,
        "crawl.yaml",
    )
    assert count_requests(load_job_file(crawl).jobs) is None


def test_count_requests_of_a_file_gone_is_unknown(write_job, tmp_path):
    (tmp_path / "urls.txt").write_text("http://a.test/1\n", encoding="utf-8")
    jobs = load_job_file(
        write_job("""
        version: 1
        jobs: [{name: f, urls_file: urls.txt}]
    """)
    ).jobs
    (tmp_path / "urls.txt").unlink()
    assert count_requests(jobs) is None


# --- the real command at a terminal ---------------------------------------------------------


async def _run_in_pty(*args: str, cwd, timeout: float = 30) -> tuple[int, bytes]:
    """Run crawler with stderr on a pseudo-terminal (100 x 30); returns (code, what the
    terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.set_blocking(master, False)
    received = bytearray()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            received.extend(os.read(master, 65536))

    loop.add_reader(master, readable)
    try:
        proc = await asyncio.create_subprocess_exec(
            CRAWLER_BIN,
            *args,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"},
        )
        os.close(slave)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        for _ in range(20):  # what is still buffered in the terminal
            before = len(received)
            await asyncio.sleep(0.02)
            readable()
            if len(received) == before:
                break
    finally:
        loop.remove_reader(master)
        os.close(master)
    return code, bytes(received)


@pytest.fixture
def slow_job(site, write_job, tmp_path):
    """30 requests of 0.15 s, 3 at a time (about 1.5 s), and one 404 in the middle."""
    urls = [f"{site.url}/slow?delay=0.15&n={i}" for i in range(30)]
    urls.insert(15, f"{site.url}/status/404?n=missing")
    (tmp_path / "urls.txt").write_text("# the test's URLs\n" + "\n".join(urls) + "\n")
    return write_job("""
        version: 1
        concurrency: 3
        defaults: {retries: 0}
        jobs: [{name: slow, urls_file: urls.txt}]
    """)


async def test_progress_redraws_at_a_terminal_and_log_lines_stay_whole(slow_job, tmp_path):
    code, raw = await _run_in_pty("run", str(slow_job), cwd=tmp_path)
    assert code == 1, raw.decode(errors="replace")
    plain = ANSI.sub(b"", raw).decode()
    frames = [int(n) for n in re.findall(r"(\d+)/31 requests", plain)]
    # Several redraws, counting up to the counted total.
    assert len(set(frames)) >= 3, plain
    assert frames == sorted(frames) and frames[-1] == 31
    assert "req/s" in plain and "1 failed: http 1" in plain
    # The warning arrived mid-run and is one whole line: it starts at the left edge of a
    # cleared line (after a newline, or rich's carriage return + erase-line), has no control
    # codes inside, ends with a newline, and the display is drawn again after it.
    warning = re.search(
        rb"(?:\n|\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*)(?:\x1b\[[0-9;]*m)*"
        rb"crawler: WARNING: slow [^\x1b\r\n]+/status/404\?n=missing failed after 1 "
        rb"attempt\(s\): http: HTTP 404(?:\x1b\[0m)?\r\n",
        raw,
    )
    assert warning, raw
    assert re.search(rb"\d+/31 requests", ANSI.sub(b"", raw[warning.end() :]))
    # The summary line comes after the display stopped, then how to open the report.
    *_, summary, report = plain.rstrip().splitlines()
    assert summary.startswith("run ")
    assert report == f"report: crawler report {tmp_path / 'out' / 'job'}"
    assert len(read_manifest(tmp_path / "out" / "job")) == 31


@pytest.mark.parametrize("flag", ["--no-progress", "-q"])
async def test_no_progress_at_a_terminal_when_turned_off(slow_job, tmp_path, flag):
    code, raw = await _run_in_pty("run", str(slow_job), flag, cwd=tmp_path)
    assert code == 1
    plain = ANSI.sub(b"", raw).decode()
    assert "/31 requests" not in plain and "req/s  " not in plain
    lines = plain.rstrip().splitlines()
    if flag == "-q":  # only errors and the summary line
        assert "WARNING" not in plain
        assert lines[-1].startswith("run ") and "report:" not in plain
    else:
        assert lines[-2].startswith("run ")
        assert lines[-1] == f"report: crawler report {tmp_path / 'out' / 'job'}"


async def test_a_resumed_run_reports_what_it_skips(site, write_job, tmp_path):
    urls = "".join(f'\n              - "{site.url}/json?n={i}"' for i in range(5))
    job = write_job(f"""
        version: 1
        jobs:
          - name: j
            urls:{urls}
    """)
    first = await run_job(job)
    assert first["ok"] == 5
    # As if the run had been killed: its row is unfinished, so the next run resumes it.
    db = sqlite3.connect(tmp_path / "out" / "job" / ".crawler" / "state.sqlite3")
    with db:
        db.execute("UPDATE runs SET finished_at = NULL, exit_code = NULL")
    db.close()
    progress = Progress(io.StringIO(), load_job_file(job).jobs)
    run = Run(load_job_file(job), RunOptions(), on_finished=progress.update)
    async with progress.running(run):
        summary = await run.run()
    assert summary["run"] == first["run"]
    assert (run.skipped, run.finished_now) == (5, 0)
    assert progress.total == 5  # counted in the background meanwhile
    assert "5/5 requests" in _text(progress)


async def test_progress_flag_forces_the_display_without_a_terminal(site, write_job, tmp_path):
    (tmp_path / "urls.txt").write_text("".join(f"{site.url}/json?n={i}\n" for i in range(3)))
    job = write_job("version: 1\njobs: [{name: j, urls_file: urls.txt}]\n")
    done = await crawler_cli("run", str(job), "--progress")
    assert done.code == 0
    plain = ANSI.sub(b"", done.stderr.encode()).decode()
    assert "3/3 requests" in plain and "0 failed" in plain
    assert plain.rstrip().splitlines()[-1].startswith("run ")
