"""Memory stays flat however many URLs a job lists, and the first request starts before a long
urls_file has been read (C4). Each run is the installed command in a child process whose peak
resident size is read by a small wrapper once it has exited."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import CRAWLER_BIN, read_manifest

# Runs the command given after the stdout path, then reports its exit code and peak RSS.
_MEASURE = r"""
import json, resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.call(sys.argv[2:], stdout=out)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "peak": peak}))
"""
MIB = 1024 * 1024


@dataclass
class Measured:
    code: int
    peak_mib: float
    stdout: Path
    stderr: str
    seconds: float


async def measure(*args: str, stdout: Path, cwd: Path, timeout: float = 60) -> Measured:
    """Run ``crawler *args`` in a child process without blocking this event loop (test servers
    keep serving); its stdout goes to the file ``stdout``."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MEASURE,
        str(stdout),
        CRAWLER_BIN,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report = json.loads(out.decode().strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = report["peak"] / MIB if sys.platform == "darwin" else report["peak"] / 1024
    return Measured(report["code"], peak, stdout, err.decode(), time.monotonic() - started)


def write_urls(path: Path, count: int, base: str = "http://127.0.0.1:9") -> int:
    """``count`` distinct URLs of about 150 characters; returns the file's size."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(
                f"{base}/catalogue/items/{i}/detail/page-{i % 97}.html"
                f"?ref=listing&token=0123456789abcdefghijklmnopqrstuvwxyz&sort=asc&n={i}\n"
            )
    return path.stat().st_size


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


async def test_dry_run_memory_does_not_grow_with_urls(tmp_path):
    figures = {}
    for count in (20_000, 200_000):
        folder = tmp_path / str(count)
        folder.mkdir()
        write_urls(folder / "urls.txt", count)
        (folder / "job.yaml").write_text(
            "version: 1\n"
            "jobs:\n"
            "  - name: bulk\n    urls_file: urls.txt\n    save: bytes\n"
            "  - name: named\n    urls_file: urls.txt\n    filename: '{path}{ext}'\n",
            encoding="utf-8",
        )
        done = await measure("run", "job.yaml", "--dry-run", stdout=folder / "plan.txt", cwd=folder)
        assert done.code == 0, done.stderr
        assert count_lines(folder / "plan.txt") == 2 * count
        assert not (folder / "out").exists()
        figures[count] = done.peak_mib
        print(f"dry run, {count} URLs x 2 jobs: peak RSS {done.peak_mib:.1f} MiB")
    # Holding 180,000 more URLs of ~150 characters, twice, would take well over 50 MiB.
    assert figures[200_000] < figures[20_000] + 12, figures
    assert figures[200_000] < 120, figures


async def test_5000_requests_with_flat_memory(site, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "".join(f"{site.url}/bytes?size={100 + i % 50}&i={i}\n" for i in range(5000)),
        encoding="utf-8",
    )
    (tmp_path / "job.yaml").write_text(
        "version: 1\nconcurrency: 64\nper_host: 64\n"
        "jobs:\n  - name: bulk\n    urls_file: urls.txt\n    save: bytes\n",
        encoding="utf-8",
    )
    done = await measure(
        "run",
        "job.yaml",
        "-o",
        "out",
        "--no-progress",
        stdout=tmp_path / "stdout.txt",
        cwd=tmp_path,
    )
    print(f"5000 requests: peak RSS {done.peak_mib:.1f} MiB in {done.seconds:.1f} s")
    assert done.code == 0, done.stderr
    records = read_manifest(tmp_path / "out")
    assert len(records) == 5000
    assert all(r["ok"] for r in records)
    assert len({r["url"] for r in records}) == 5000
    files = [p for p in (tmp_path / "out" / "bulk").rglob("*") if p.is_file()]
    assert len(files) == 5000
    assert sorted(p.stat().st_size for p in files) == sorted(100 + i % 50 for i in range(5000))
    assert len(site.seen.requests) == 5000
    assert done.peak_mib < 150


def _read_position(pid: int, path: Path) -> int | None:
    """How far process ``pid`` has read the open file ``path`` (Linux /proc), or None when it
    does not hold it open."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target == str(path):
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            return int(info.split("pos:", 1)[1].split()[0])
    return None


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux /proc")
async def test_first_request_before_a_long_urls_file_is_read(aiohttp_server, tmp_path):
    arrived = asyncio.Event()
    release = asyncio.Event()
    seen: dict[str, float | int | None] = {}
    proc: asyncio.subprocess.Process | None = None

    async def hold(request: web.Request) -> web.Response:
        if not arrived.is_set():
            seen["at"] = time.monotonic()
            seen["position"] = _read_position(proc.pid, urls) if proc else None
            arrived.set()
        try:
            await asyncio.wait_for(release.wait(), 30)
        except TimeoutError:
            pass
        return web.Response(text="held")

    app = web.Application()
    app.router.add_get("/hold", hold)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")

    urls = (tmp_path / "urls.txt").resolve()
    with urls.open("w", encoding="utf-8") as handle:
        for i in range(300_000):
            handle.write(f"{base}/hold?i={i}&pad=0123456789abcdefghijklmnopqrstuvwxyz\n")
    size = urls.stat().st_size
    job = tmp_path / "job.yaml"
    job.write_text("version: 1\njobs:\n  - name: bulk\n    urls_file: urls.txt\n", encoding="utf-8")

    # How long going through the whole file takes: the dry run reads and expands every line.
    plan = await measure("run", str(job), "--dry-run", stdout=tmp_path / "plan.txt", cwd=tmp_path)
    assert plan.code == 0, plan.stderr

    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        "run",
        str(job),
        "-o",
        str(tmp_path / "out"),
        "--no-progress",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(arrived.wait(), 30)
    finally:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 30)
        release.set()
    first = float(seen["at"] or 0) - started
    position = seen["position"]
    print(
        f"first request after {first:.2f} s; the whole file takes {plan.seconds:.2f} s; "
        f"read {position} of {size} bytes by then"
    )
    assert position is not None, "the urls_file was no longer open: read to the end already"
    assert int(position) < size // 10
    assert first < plan.seconds / 2
