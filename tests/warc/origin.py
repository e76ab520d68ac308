"""The origin server of the WARC tests: known bodies, each sent exactly as written here, so a
test can compare what the archive holds with what went over the wire."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field

import brotli
from aiohttp import web

TEXT = b"plain text, archived as sent\n" * 40
BINARY = bytes(range(256)) * 16
MISSING = b"no such page"
DOWN = b"down for maintenance"
FINAL = b"<html><body>the end of the chain</body></html>"
GZIP_PLAIN = json.dumps({"compressed": "gzip", "items": list(range(200))}).encode()
GZIP_SENT = gzip.compress(GZIP_PLAIN, mtime=0)
BR_PLAIN = ("brotli " * 500).encode()
BR_SENT = brotli.compress(BR_PLAIN)
CHUNKS = [b"first chunk\n" * 30, b"second chunk\n" * 20, b"third\n"]
CHUNKED = b"".join(CHUNKS)
SECRET_OK = b"you may pass"


@dataclass
class Origin:
    """What the server saw: hits per path and the bodies of requests."""

    hits: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    delay: float = 0.0  # per /item request


def item_body(n: int) -> bytes:
    return f"item {n}: ".encode() + bytes((n + i) % 256 for i in range(600))


def page(n: int, links: list[int]) -> bytes:
    anchors = "".join(f'<a href="/site/{k}.html">page {k}</a>\n' for k in links)
    return f"<!doctype html><html><body><h1>page {n}</h1>\n{anchors}</body></html>".encode()


# A small linked site: every page reachable from page 0, some linked twice, one link loops.
SITE_LINKS = {0: [1, 2, 3], 1: [4, 5, 0], 2: [5, 6], 3: [7], 4: [], 5: [8], 6: [1], 7: [], 8: [2]}


def origin_app(origin: Origin) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        origin.hits[request.path] += 1
        origin.bodies[request.path] = await request.read()
        origin.headers[request.path] = dict(request.headers)
        return await handler(request)

    def fixed(body: bytes, status: int = 200, **headers: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, status=status, headers=headers)

        return handler

    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 1:
            raise web.HTTPFound("/hop/2", text="to hop 2")
        raise web.HTTPMovedPermanently("/final", text="to the final page")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in CHUNKS:
            await response.write(piece)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def post(request: web.Request) -> web.Response:
        received = await request.json()
        return web.json_response({"received": received})

    async def secret(request: web.Request) -> web.Response:
        return web.Response(body=SECRET_OK, content_type="text/plain")

    async def item(request: web.Request) -> web.Response:
        await asyncio.sleep(origin.delay)
        return web.Response(body=item_body(int(request.match_info["n"])))

    async def site(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n % 2:  # odd pages come gzip-encoded: links must be read from the decoded body
            headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
            return web.Response(
                body=gzip.compress(page(n, SITE_LINKS[n]), mtime=0), headers=headers
            )
        return web.Response(body=page(n, SITE_LINKS[n]), content_type="text/html")

    app = web.Application(middlewares=[record])
    app.router.add_get("/text", fixed(TEXT, **{"Content-Type": "text/plain; charset=utf-8"}))
    app.router.add_get("/binary", fixed(BINARY, **{"Content-Type": "application/octet-stream"}))
    app.router.add_get("/missing", fixed(MISSING, 404, **{"Content-Type": "text/plain"}))
    app.router.add_get("/down", fixed(DOWN, 503, **{"Content-Type": "text/plain"}))
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/final", fixed(FINAL, **{"Content-Type": "text/html"}))
    gz_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    app.router.add_get("/gz", fixed(GZIP_SENT, **gz_headers))
    br_headers = {"Content-Type": "text/plain", "Content-Encoding": "br"}
    app.router.add_get("/br", fixed(BR_SENT, **br_headers))
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/post", post)
    app.router.add_get("/secret", secret)
    app.router.add_get("/item/{n}", item)
    app.router.add_get("/site/{n}.html", site)
    return app
