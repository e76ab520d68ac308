"""C15: `crawler run --workers N` runs shards 0..N-1 as local child processes, then merges.
It is one run: after kill -9 of the whole process group or a SIGTERM it resumes the
unfinished shards; after it finished, the same command starts a new run of every shard. A
child that stops early stops the others and gives the supervisor its exit code."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ..conftest import CRAWLER_BIN
from . import (
    Farm,
    clean_env,
    cli,
    dry_urls,
    last_json,
    lines_in,
    peak_overlap,
    read_manifest,
    records_so_far,
    runs_of,
    sha256,
    shard_dirs,
    wait_until,
    write_job,
)


def shard_runs(out: Path, n: int) -> list[str]:
    return [last_json(out / "shards" / f"{k}-of-{n}")["run"] for k in range(n)]


def assert_merged(out: Path, urls: list[str], n: int) -> dict:
    """OUT/manifest.jsonl has each request once, its files in place; last.json sums it."""
    lines = read_manifest(out)
    assert Counter(r["url"] for r in lines) == Counter(urls)
    for record in lines:
        assert record["ok"], record
        assert sha256(out / record["path"]) == record["sha256"]
    summary = last_json(out)
    assert summary["shards"] == n
    assert summary["requests"] == summary["ok"] == len(urls)
    assert summary["exit_code"] == 0
    assert runs_of(summary) == set(shard_runs(out, n))
    return summary


async def test_workers_run_end_to_end_then_a_new_run(tmp_path: Path) -> None:
    async with Farm(tmp_path, 20, delay=0.02) as farm:
        urls = farm.items(10)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=8)
        out = tmp_path / "out"
        command = ("run", str(job), "-o", str(out), "--workers", "2", "-q")
        done = await cli(*command)
        assert done.code == 0, done.stderr
        assert shard_dirs(out) == ["0-of-2", "1-of-2"]
        assert_merged(out, urls, 2)
        assert farm.fetched() == Counter(urls)
        # The two children's shares of concurrency add up to it.
        assert peak_overlap(farm.hits) <= 8
        first = shard_runs(out, 2)

        # A finished --workers run: the same command starts a new run of every shard.
        again = await cli(*command)
        assert again.code == 0, again.stderr
        second = shard_runs(out, 2)
        assert not set(first) & set(second)
        assert farm.fetched() == Counter({url: 2 for url in urls})
        summary = assert_merged(out, urls, 2)
        assert runs_of(summary) == set(second)


async def test_workers_killed_with_its_group_resume_only_the_unfinished_shard(
    tmp_path: Path,
) -> None:
    async with Farm(tmp_path, 20) as farm:
        urls = farm.items(10)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=4)
        out = tmp_path / "out"
        # Shard 1's hosts answer slowly, shard 0's at once.
        dry = await cli("run", str(job), "--dry-run", "--shard", "1/2")
        slow_urls = set(dry_urls(dry.stdout))
        assert slow_urls and len(slow_urls) < len(urls)
        farm.slow = {urlsplit(url).netloc: 0.1 for url in slow_urls}

        command = ("run", str(job), "-o", str(out), "--workers", "2", "-q")
        first = await farm.spawn(*command, group=True)
        shard0, shard1 = (out / "shards" / f"{k}-of-2" for k in range(2))
        await wait_until(lambda: (shard0 / ".crawler" / "last.json").exists(), what="shard 0")
        await wait_until(lambda: lines_in(shard1 / "manifest.jsonl") >= 10, what="shard 1 lines")
        assert first.proc.returncode is None
        first.kill()  # SIGKILL to the whole process group: supervisor and children
        await first.finish(timeout=10)
        await wait_until(lambda: sum(farm.inflight.values()) == 0, timeout=10)
        assert farm.answered() < len(urls)
        assert not (out / "manifest.jsonl").exists()
        done0 = last_json(shard0)
        assert done0["exit_code"] == 0
        [run1] = {r["run"] for r in records_so_far(shard1)}

        farm.slow = {}
        done = await cli(*command)
        assert done.code == 0, done.stderr
        assert_merged(out, urls, 2)
        # The finished shard was left as it was; the other went on with its own run.
        assert last_json(shard0) == done0
        assert shard_runs(out, 2) == [done0["run"], run1]
        fetched = farm.fetched()
        assert set(fetched) == set(urls)
        assert all(fetched[url] == 1 for url in urls if url not in slow_urls)
        assert max(fetched.values()) <= 2
        assert sum(1 for n in fetched.values() if n > 1) <= 4  # at most what was in flight


async def test_workers_resume_a_shard_killed_after_its_summary_before_its_end(
    tmp_path: Path,
) -> None:
    """A kill can land after a shard wrote last.json (exit 0) but before its state recorded
    the end of the run (the runner writes the summary first). The next --workers run must
    not count that shard as finished while `crawler merge` does not: it resumes it."""
    async with Farm(tmp_path, 8) as farm:
        urls = farm.items(5)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=4)
        out = tmp_path / "out"
        dry = await cli("run", str(job), "--dry-run", "--shard", "1/2")
        slow_urls = set(dry_urls(dry.stdout))
        assert slow_urls and len(slow_urls) < len(urls)
        farm.slow = {urlsplit(url).netloc: 0.3 for url in slow_urls}

        command = ("run", str(job), "-o", str(out), "--workers", "2", "-q")
        first = await farm.spawn(*command, group=True)
        shard0, shard1 = (out / "shards" / f"{k}-of-2" for k in range(2))
        await wait_until(lambda: (shard0 / ".crawler" / "last.json").exists(), what="shard 0")
        await wait_until(lambda: lines_in(shard1 / "manifest.jsonl") >= 2, what="shard 1 lines")
        first.kill()
        await first.finish(timeout=10)
        run0 = last_json(shard0)["run"]
        # As if the kill came between shard 0's last.json and its state's end of run.
        db = sqlite3.connect(shard0 / ".crawler" / "state.sqlite3")
        with db:
            db.execute("UPDATE runs SET finished_at = NULL, exit_code = NULL WHERE id = ?", (run0,))
        db.close()
        unfinished = await cli("merge", str(out))
        assert unfinished.code == 5, unfinished.stderr
        assert "0-of-2" in unfinished.stderr

        farm.slow = {}
        done = await cli(*command)
        assert done.code == 0, done.stderr
        assert_merged(out, urls, 2)
        assert shard_runs(out, 2)[0] == run0  # resumed, not started anew
        assert all(farm.fetched()[url] == 1 for url in urls if url not in slow_urls)


async def test_workers_sigterm_exits_143_and_resumes_without_refetching(tmp_path: Path) -> None:
    async with Farm(tmp_path, 20, delay=0.1) as farm:
        urls = farm.items(10)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=4)
        out = tmp_path / "out"
        command = ("run", str(job), "-o", str(out), "--workers", "2", "-q")
        supervisor = await farm.spawn(*command)
        await wait_until(lambda: farm.answered() >= 20, what="20 answers")

        # One supervisor per output folder (C11).
        second = await cli(*command, timeout=30)
        assert second.code == 3, second.stderr
        assert str(out) in second.stderr

        assert supervisor.proc.returncode is None
        supervisor.proc.send_signal(signal.SIGTERM)  # the supervisor alone; it passes it on
        stopped = await supervisor.finish(timeout=20)
        assert stopped.code == 143, stopped.stderr
        assert farm.answered() < len(urls)
        assert sum(farm.inflight.values()) == 0  # the children finished what was in flight

        farm.delay = 0
        done = await cli(*command)
        assert done.code == 0, done.stderr
        assert_merged(out, urls, 2)
        assert farm.fetched() == Counter(urls)  # nothing fetched twice


@contextlib.contextmanager
def holding_lock(folder: Path) -> Iterator[None]:
    """Hold the output folder's lock as a running crawler would."""
    (folder / ".crawler").mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".crawler" / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


async def test_workers_exit_with_the_code_of_a_child_that_stops_early(tmp_path: Path) -> None:
    async with Farm(tmp_path, 20, delay=0.1) as farm:
        urls = farm.items(10)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=4)
        out = tmp_path / "out"
        command = ("run", str(job), "-o", str(out), "--workers", "2", "-q")
        with holding_lock(out / "shards" / "0-of-2"):
            busy = await cli(*command, timeout=30)
        assert busy.code == 3, busy.stderr
        assert "0-of-2" in busy.stderr
        # The other shard was stopped, not run to its end; nothing was merged.
        assert farm.answered() < len(urls)
        assert not (out / "manifest.jsonl").exists()

        # Once the folder is free the same command goes on and finishes.
        farm.delay = 0
        done = await cli(*command)
        assert done.code == 0, done.stderr
        assert_merged(out, urls, 2)
        assert max(farm.fetched().values()) == 1


async def test_workers_auto_is_one_per_usable_cpu(tmp_path: Path) -> None:
    """auto counts the CPUs this process may run on (its affinity), not the machine's."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    async with Farm(tmp_path, 6) as farm:
        urls = farm.items(2)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=8)
        out = tmp_path / "out"
        proc = await asyncio.create_subprocess_exec(
            CRAWLER_BIN,
            *("run", str(job), "-o", str(out), "--workers", "auto", "-q"),
            env=clean_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        n = len(cpus)
        assert shard_dirs(out) == [f"{k}-of-{n}" for k in range(n)]
        assert_merged(out, urls, n)
