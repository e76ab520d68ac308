"""Shared fixtures: a real local site (tests/servers.py), job files in tmp_path, and helpers
that run crawler in-process or as the installed command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from crawler.config.jobfile import load_job_file
from crawler.run.runner import Run, RunOptions

from .servers import Seen, site_app

CRAWLER_BIN = str(Path(sys.executable).parent / "crawler")


@dataclass
class Site:
    url: str
    seen: Seen
    server: TestServer


@pytest.fixture
async def site(aiohttp_server: Any) -> Site:
    seen = Seen()
    server = await aiohttp_server(site_app(seen))
    return Site(str(server.make_url("")).rstrip("/"), seen, server)


@pytest.fixture
def write_job(tmp_path: Path):
    """write_job(yaml_text, name='job.yaml') -> path; the text is dedented."""

    def write(text: str, name: str = "job.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


async def run_job(
    path: Path, out: Path | None = None, fresh: bool = False, **env: str
) -> dict[str, Any]:
    """Run a job file in this process (this event loop, so test servers keep serving)."""
    job_file = load_job_file(path, {**os.environ, **env})
    return await Run(job_file, RunOptions(out=out, fresh=fresh)).run()


def read_manifest(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str


async def crawler_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> Done:
    """Run the installed `crawler` command without blocking this event loop."""
    proc = await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        *args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


Route = tuple[bytes, dict[str, str]]


@pytest.fixture
async def serve(aiohttp_server: Any):
    """serve({name: (body, headers)}) -> base URL; GET or HEAD base + name answers with
    exactly that body and those headers (nothing compressed, no charset added)."""
    from aiohttp import web

    async def start(routes: dict[str, Route]) -> str:
        async def handler(request: web.Request) -> web.Response:
            body, headers = routes[request.match_info["name"]]
            return web.Response(body=body, headers=headers)

        app = web.Application()
        app.router.add_get("/r/{name}", handler)  # HEAD too
        server = await aiohttp_server(app)
        return str(server.make_url("/r/"))

    return start


async def crawl(
    tmp_path: Path, write_job: Any, jobs: list[dict[str, Any]]
) -> tuple[dict[str, Any], Path, dict[str, dict[str, Any]]]:
    """Run ``jobs`` once (no retries); returns (summary, OUT, manifest records by URL)."""
    for job in jobs:
        job.setdefault("retries", 0)
    path = write_job(json.dumps({"version": 1, "jobs": jobs}))
    out = tmp_path / "out"
    summary = await run_job(path, out=out)
    records = read_manifest(out)
    by_url = {r["url"]: r for r in records}
    assert len(by_url) == len(records)
    return summary, out, by_url
