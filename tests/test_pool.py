"""The worker pool: concurrency and per_host caps as the servers count them, hosts that do not
starve each other, rate_per_host, and jobs that run together (C4)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .conftest import read_manifest, run_job
from .servers import Seen, site_app


async def _slow_sites(aiohttp_server, count):
    sites = []
    for _ in range(count):
        seen = Seen()
        server = await aiohttp_server(site_app(seen))
        sites.append((str(server.make_url("")).rstrip("/"), seen))
    return sites


async def test_concurrency_and_per_host_caps(aiohttp_server, write_job, tmp_path):
    seen = Seen()  # shared by three servers: .peak counts the whole run, by Host header apart
    bases = []
    for _ in range(3):
        server = await aiohttp_server(site_app(seen))
        bases.append(str(server.make_url("")).rstrip("/"))
    urls = [f"{base}/slow?delay=0.15&i={i}" for i in range(20) for base in bases]
    job = write_job(
        "version: 1\nconcurrency: 7\nper_host: 3\njobs:\n  - name: s\n    urls:\n"
        + "".join(f"      - {u}\n" for u in urls)
    )
    summary = await run_job(job)
    assert summary["exit_code"] == 0
    assert summary["requests"] == 60
    assert seen.peak == 7  # reached, never passed
    assert sorted(seen.peak_by_host.values()) == [3, 3, 3]
    assert len(read_manifest(tmp_path / "out" / "job")) == 60


async def test_run_wide_cap_on_one_server(site, write_job):
    job = write_job(
        "version: 1\nconcurrency: 5\nper_host: 50\njobs:\n  - name: s\n    urls:\n"
        + "".join(f"      - {site.url}/slow?delay=0.1&i={i}\n" for i in range(40))
    )
    summary = await run_job(job)
    assert summary["ok"] == 40
    assert site.seen.peak == 5


async def test_busy_host_does_not_starve_others(aiohttp_server, write_job, tmp_path):
    (slow_base, _), (fast_base, _) = await _slow_sites(aiohttp_server, 2)
    slow = [f"{slow_base}/slow?delay=0.2&i={i}" for i in range(30)]
    fast = [f"{fast_base}/json?i={i}" for i in range(10)]
    job = write_job(
        "version: 1\nconcurrency: 8\nper_host: 2\njobs:\n  - name: s\n    urls:\n"
        + "".join(f"      - {u}\n" for u in slow + fast)  # the fast host's URLs come last
    )
    started = time.monotonic()
    summary = await run_job(job)
    assert summary["ok"] == 40
    records = read_manifest(tmp_path / "out" / "job")
    fast_positions = [i for i, r in enumerate(records) if r["url"].startswith(fast_base)]
    # The ten fast requests finish among the first, not after the slow host's 3 s of work.
    assert len(fast_positions) == 10
    assert max(fast_positions) < 14
    assert time.monotonic() - started < 10


async def test_jobs_run_together(aiohttp_server, write_job, tmp_path):
    (a_base, _), (b_base, _) = await _slow_sites(aiohttp_server, 2)
    a = "".join(f"      - {a_base}/slow?delay=0.1&i={i}\n" for i in range(20))
    b = "".join(f"      - {b_base}/slow?delay=0.1&i={i}\n" for i in range(20))
    job = write_job(
        f"version: 1\nconcurrency: 4\nper_host: 2\njobs:\n  - name: a\n    urls:\n{a}"
        f"  - name: b\n    urls:\n{b}"
    )
    await run_job(job)
    records = read_manifest(tmp_path / "out" / "job")
    first_half = [r["job"] for r in records[:20]]
    assert first_half.count("b") >= 8  # job b did not wait for job a


async def test_rate_per_host(aiohttp_server, write_job):
    stamps: list[float] = []

    async def handler(request):
        stamps.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/r", handler)
    server = await aiohttp_server(app)
    base = str(server.make_url("/r"))
    job = write_job(
        "version: 1\nrate_per_host: 4\nper_host: 8\njobs:\n  - name: r\n    urls:\n"
        + "".join(f"      - {base}?i={i}\n" for i in range(10))
    )
    summary = await run_job(job)
    assert summary["ok"] == 10
    stamps.sort()
    # Starts spaced 1/4 s apart: 10 starts take about 2.25 s, never a burst.
    assert stamps[-1] - stamps[0] >= 2.1
    for i in range(len(stamps)):
        window = [s for s in stamps if stamps[i] <= s < stamps[i] + 1.0]
        assert len(window) <= 4


async def test_retry_waiting_holds_no_slot(site, write_job):
    # One request waits ~1 s for its retry (Retry-After); with concurrency 1 the others must
    # still run meanwhile.
    urls = [f"{site.url}/flaky/w?codes=503,200"] + [f"{site.url}/json?i={i}" for i in range(5)]
    job = write_job(
        "version: 1\nconcurrency: 1\njobs:\n  - name: w\n    urls:\n"
        + "".join(f"      - {u}\n" for u in urls)
    )
    summary = await run_job(job)
    assert summary["ok"] == 6
    paths = site.seen.paths()
    assert paths[0] == "/flaky/w" and paths[-1] == "/flaky/w"
    await asyncio.sleep(0)
