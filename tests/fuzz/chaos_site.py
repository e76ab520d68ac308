"""A local aiohttp site in a thread of its own, for runs of the installed `crawler` command that
a test kills: small bodies (/s/N), 64 KiB ones (/m/N), large ones over crawler's 8 MiB spill threshold streamed
slowly (/big/N), and a generated site of linked pages (/site/N.html). Every body is a pure
function of its path, so a test knows each file's expected sha256; every request is counted."""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections import Counter

from aiohttp import web

MIB = 1024 * 1024
BIG_BYTES = 9 * MIB + 12345  # past crawler's SPILL_BYTES (8 MiB): streamed to a temp file
_BIG_CHUNK = 256 * 1024
# The server pauses here, well past the spill threshold, so a kill can land mid-spill.
SPILL_MARK = int(8.75 * MIB)


def small_body(n: int) -> bytes:
    seed = hashlib.sha256(b"small %d" % n).digest()
    return (seed * 70)[: 100 + (n * 37) % 1900]


def any_body(path: str) -> bytes:
    return b"the body of " + path.encode()


def medium_body(n: int) -> bytes:
    return (hashlib.sha256(b"medium %d" % n).digest() * 2048)[: 64 * 1024 - n % 100]


def big_body(n: int) -> bytes:
    block = hashlib.sha256(b"big %d" % n).digest() * (_BIG_CHUNK // 32)
    return (block * (BIG_BYTES // len(block) + 1))[:BIG_BYTES]


def page_links(n: int, pages: int, seed: int) -> list[int]:
    """Page n links to the next page (so every page is reachable) and to 4 others."""
    rng = random.Random(seed * 1_000_003 + n)
    return [(n + 1) % pages, *(rng.randrange(pages) for _ in range(4))]


def page_body(n: int, pages: int, seed: int) -> bytes:
    links = "".join(f'<a href="/site/{m}.html">page {m}</a> ' for m in page_links(n, pages, seed))
    return f"<!doctype html><html><body><h1>page {n}</h1>{links}</body></html>".encode()


class ChaosSite:
    def __init__(self, pages: int = 0, seed: int = 0) -> None:
        self.pages = pages
        self.seed = seed
        self.hits: Counter[str] = Counter()
        self.big_started = 0
        self.big_cut = 0  # big bodies whose client went away mid-stream
        self.past_spill_mark = threading.Event()
        # Seconds each small body and page waits before it is sent: while a test kills runs,
        # it bounds what one run can fetch (concurrency / delay a second) and keeps requests
        # in flight at every kill; 0 for the run that finishes.
        self.delay = 0.0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="chaos-site")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ChaosSite:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the chaos site did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/s/{n}", self._small)
        app.router.add_get("/m/{n}", self._medium)
        app.router.add_get("/big/{n}", self._big)
        app.router.add_get("/site/{n}.html", self._page)
        app.router.add_get("/any/{tail:.*}", self._any)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _small(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        body = small_body(int(request.match_info["n"]))
        return web.Response(body=body, content_type="application/octet-stream")

    async def _any(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.Response(body=any_body(request.raw_path), content_type="text/plain")

    async def _medium(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        body = medium_body(int(request.match_info["n"]))
        return web.Response(body=body, content_type="application/octet-stream")

    async def _page(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        n = int(request.match_info["n"])
        if not 0 <= n < self.pages:
            raise web.HTTPNotFound()
        return web.Response(body=page_body(n, self.pages, self.seed), content_type="text/html")

    async def _big(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.big_started += 1
        body = big_body(int(request.match_info["n"]))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(body)
        await response.prepare(request)
        sent = 0
        try:
            for start in range(0, len(body), _BIG_CHUNK):
                chunk = body[start : start + _BIG_CHUNK]
                await response.write(chunk)
                sent += len(chunk)
                if sent >= SPILL_MARK and not self.past_spill_mark.is_set():
                    self.past_spill_mark.set()
                    await asyncio.sleep(0.5)  # a wide window for the kill
                await asyncio.sleep(0.01)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.big_cut += 1
            raise
        return response
