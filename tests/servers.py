"""Real local test servers: an aiohttp.web app with named behaviours that records what it saw,
and raw asyncio servers for replies aiohttp.web cannot produce (malformed HTTP)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Seen:
    """What the server saw: every request, and in-flight peaks overall and per host."""

    requests: list[dict[str, object]] = field(default_factory=list)
    inflight: int = 0
    peak: int = 0
    by_host: Counter[str] = field(default_factory=Counter)
    peak_by_host: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)

    def paths(self) -> list[str]:
        return [str(r["path"]) for r in self.requests]


def site_app(seen: Seen) -> web.Application:
    """Routes: /echo (method, query, headers, body as JSON), /status/{code}, /flaky/{key}
    (?codes=503,503,200 replayed in order per key), /slow?delay=, /json, /text?charset=,
    /bytes?size=, /redirect/{n}, /loop, /gzip, /head."""

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        body = await request.read()
        seen.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": body,
                "host": host,
            }
        )
        seen.hits[request.path_qs] += 1
        seen.inflight += 1
        seen.by_host[host] += 1
        seen.peak = max(seen.peak, seen.inflight)
        seen.peak_by_host[host] = max(seen.peak_by_host[host], seen.by_host[host])
        try:
            return await handler(request)
        finally:
            seen.inflight -= 1
            seen.by_host[host] -= 1

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "query": [[k, v] for k, v in request.query.items()],
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=code, text=f"status {code}", headers=headers)

    async def flaky(request: web.Request) -> web.Response:
        codes = [int(c) for c in request.query.get("codes", "503,200").split(",")]
        n = seen.hits[request.path_qs] - 1
        code = codes[min(n, len(codes) - 1)]
        return web.Response(status=code, text=f"attempt {n + 1}: {code}")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.2")))
        return web.Response(text="slow done")

    async def json_route(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "items": [1, 2, 3], "text": "héllo ☃"})

    async def text(request: web.Request) -> web.Response:
        words = request.query.get("words", "hello world")
        codec = request.query.get("codec", "utf-8")
        ctype = request.query.get("ctype", "text/plain")
        declared = request.query.get("declare")
        header = f"{ctype}; charset={declared}" if declared else ctype
        return web.Response(body=words.encode(codec), headers={"Content-Type": header})

    async def bytes_route(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "1000"))
        return web.Response(
            body=bytes(i % 251 for i in range(size)), content_type="application/octet-stream"
        )

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n <= 0:
            return web.Response(text="landed")
        raise web.HTTPFound(f"/redirect/{n - 1}")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def gzipped(request: web.Request) -> web.Response:
        data = json.dumps({"zipped": True}).encode()
        return web.Response(
            body=gzip.compress(data),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    app = web.Application(middlewares=[count])
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/flaky/{key}", flaky)
    app.router.add_get("/slow", slow)
    app.router.add_get("/json", json_route)
    app.router.add_get("/text", text)
    app.router.add_get("/bytes", bytes_route)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/gzip", gzipped)
    return app


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def start_raw_server(handler: RawHandler) -> tuple[asyncio.Server, int]:
    """A raw TCP server on 127.0.0.1 with a free port, for malformed HTTP."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
