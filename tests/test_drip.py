"""A slow drip (C12): a server that sends a byte now and then forever never trips sock_read,
so the total timeout must end it, as kind `timeout`, while the run's other requests finish."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .conftest import read_manifest, run_job


async def test_slow_drip_ends_on_total_timeout(aiohttp_server, site, write_job, tmp_path):
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 1_000_000
        await response.prepare(request)
        for _ in range(600):  # bounded: a minute at most, far past the job's timeout
            await response.write(b".")
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_get("/drip", drip)
    server = await aiohttp_server(app)
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0, timeout: {{total: 1.5, sock_read: 1}}}}
        jobs:
          - name: d
            urls: ["{server.make_url("/drip")}", "{site.url}/json", "{site.url}/text?words=ok"]
    """)
    started = time.monotonic()
    summary = await run_job(job)
    assert time.monotonic() - started < 10
    assert summary["exit_code"] == 1
    records = {r["url"].rsplit("/", 1)[-1]: r for r in read_manifest(tmp_path / "out" / "job")}
    assert records["drip"]["error"]["kind"] == "timeout"
    assert records["drip"]["status"] == 200  # the headers came; the body never finished
    assert records["drip"]["path"] is None
    assert records["json"]["ok"] and records["text?words=ok"]["ok"]
