"""The one ClientSession of a run (C4): aiodns resolver, cchardet fallback charset, sized
connection pool, kept-alive connections."""

from __future__ import annotations

import codecs
import json
from typing import Any

import aiodns
import aiohttp
import pytest
from aiohttp import web

import crawler.run.runner
from crawler.http import charset
from crawler.http.session import build_session

from .conftest import read_manifest, run_job

ZH = (
    "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。这座城市有着三千多年的建城史"
    "和八百多年的建都史，历史文化遗产非常丰富。每年都有大量游客来到这里参观故宫、天坛、颐和园。"
)


async def test_session_uses_aiodns_resolver_and_cchardet_fallback():
    async with build_session(concurrency=7, per_host=3) as session:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        resolver = connector._resolver
        assert type(resolver) is aiohttp.AsyncResolver
        assert isinstance(resolver._resolver, aiodns.DNSResolver)
        assert connector.limit == 7
        assert connector.limit_per_host == 3
        assert not connector.force_close  # connections are kept alive
        assert session._resolve_charset is charset.fallback_charset
    assert session.closed


async def test_fallback_charset_is_what_response_text_uses(aiohttp_server):
    body = ZH.encode("gb2312")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": "text/html"})

    app = web.Application()
    app.router.add_get("/zh", handler)
    server = await aiohttp_server(app)
    async with (
        build_session(concurrency=2, per_host=2) as session,
        session.get(server.make_url("/zh")) as response,
    ):
        assert await response.text() == ZH
        assert response.get_encoding() == charset.fallback_charset(response, body)
        assert codecs.lookup(response.get_encoding()).name in ("gb2312", "gbk", "gb18030")


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record the host names each resolver class is asked for; the lookups still happen."""
    calls: dict[str, list[str]] = {"async": [], "threaded": []}

    def recording(kind: str, original: Any) -> Any:
        async def resolve(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
            calls[kind].append(host)
            return await original(self, host, *args, **kwargs)

        return resolve

    monkeypatch.setattr(
        aiohttp.AsyncResolver, "resolve", recording("async", aiohttp.AsyncResolver.resolve)
    )
    monkeypatch.setattr(
        aiohttp.ThreadedResolver,
        "resolve",
        recording("threaded", aiohttp.ThreadedResolver.resolve),
    )
    return calls


async def test_a_run_resolves_localhost_through_aiodns(site, write_job, tmp_path, resolver_calls):
    port = site.server.port
    job = write_job(f"""
        version: 1
        jobs:
          - name: local
            urls:
              - http://localhost:{port}/text?words=resolved+by+aiodns
              - http://localhost:{port}/json
            retries: 0
    """)
    out = tmp_path / "out"
    summary = await run_job(job, out=out)
    assert summary["exit_code"] == 0
    records = sorted(read_manifest(out), key=lambda r: r["url"])
    assert [r["ok"] for r in records] == [True, True]
    assert all(r["status"] == 200 for r in records)
    text = next(r for r in records if "/text" in r["url"])
    assert (out / text["path"]).read_text(encoding="utf-8") == "resolved by aiodns"
    assert all(str(r["final_url"]).startswith(f"http://localhost:{port}/") for r in records)
    assert "localhost" in resolver_calls["async"]
    assert resolver_calls["threaded"] == []
    assert {r["host"] for r in site.seen.requests} == {f"localhost:{port}"}


async def test_one_session_serves_every_job_of_a_run(site, write_job, tmp_path, monkeypatch):
    built: list[aiohttp.ClientSession] = []

    def counting(concurrency: int, per_host: int) -> aiohttp.ClientSession:
        session = build_session(concurrency, per_host)
        built.append(session)
        return session

    monkeypatch.setattr(crawler.run.runner, "build_session", counting)
    jobs = [
        {"name": f"j{i}", "urls": [f"{site.url}/text?words=job{i}-{n}" for n in range(3)]}
        for i in range(3)
    ]
    job = write_job(json.dumps({"version": 1, "concurrency": 4, "per_host": 2, "jobs": jobs}))
    summary = await run_job(job, out=tmp_path / "out")
    assert summary["exit_code"] == 0
    assert len(read_manifest(tmp_path / "out")) == 9
    assert len(built) == 1
    assert built[0].closed


async def test_connections_are_kept_alive_and_reused(aiohttp_server, write_job, tmp_path):
    peers: list[tuple[str, int]] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername")[:2])
        return web.Response(text=f"page {request.match_info['n']}")

    app = web.Application()
    app.router.add_get("/p/{n}", handler)
    server = await aiohttp_server(app)
    urls = [str(server.make_url(f"/p/{n}")) for n in range(30)]
    job = write_job(
        json.dumps(
            {
                "version": 1,
                "concurrency": 2,
                "per_host": 2,
                "jobs": [{"name": "keep", "urls": urls}],
            }
        )
    )
    summary = await run_job(job, out=tmp_path / "out")
    assert summary["exit_code"] == 0
    assert len(peers) == 30
    # Two requests in flight at most, so two connections serve all thirty.
    assert len(set(peers)) <= 2
