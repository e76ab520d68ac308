"""A minimal static-file HTTP/1.1 server on raw asyncio protocols (uvloop when importable),
fast enough that it is not what a benchmark measures.

    python bench/rawserver.py --root DIR --port N [--delay SECONDS]

Keep-alive, GET and HEAD; every response may be held back ``--delay`` seconds (the latency
scenario). Small files are read once and kept in memory with their headers; files above
1 MiB are streamed with flow control. Two control paths, neither counted nor delayed:
``/__stats`` answers ``{"first": <time.monotonic() of the first request>, "last": <of the
last small response sent>, "count": N}`` and ``/__reset`` forgets them. time.monotonic() is
CLOCK_MONOTONIC, the same clock in every process, so the bench can compare it with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

try:
    import uvloop
except ImportError:  # the bench works without it, a little slower
    uvloop = None

STREAM_ABOVE = 1 << 20
CHUNK = 1 << 20
TYPES = {
    ".bin": b"application/octet-stream",
    ".txt": b"text/plain; charset=utf-8",
    ".json": b"application/json; charset=utf-8",
    ".html": b"text/html; charset=utf-8",
}
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def header(status: bytes, length: int, content_type: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nServer: rawserver\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status,
        content_type,
        length,
    )


class Site:
    """What the server answers, and when it saw its first request."""

    def __init__(self, root: Path, delay: float) -> None:
        self.root = root.resolve()
        self.delay = delay
        self.cache: dict[bytes, tuple[bytes, bytes]] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.count = 0

    def control(self, path: bytes) -> bytes | None:
        if path == b"/__reset":
            self.first, self.last, self.count = None, None, 0
        elif path != b"/__stats":
            return None
        body = json.dumps({"first": self.first, "last": self.last, "count": self.count}).encode()
        return header(b"200 OK", len(body), b"application/json") + body

    def lookup(self, path: bytes) -> tuple[bytes, bytes] | tuple[bytes, Path]:
        """(header, body) for a small file, (header, file path) for a large one."""
        self.count += 1
        if self.first is None:
            self.first = time.monotonic()
        cached = self.cache.get(path)
        if cached is not None:
            return cached
        file = (self.root / path.decode("utf-8", "replace").lstrip("/")).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return NOT_FOUND, b""
        size = file.stat().st_size
        head = header(b"200 OK", size, TYPES.get(file.suffix, b"application/octet-stream"))
        if size > STREAM_ABOVE:
            return head, file
        self.cache[path] = (head, file.read_bytes())
        return self.cache[path]


class HttpProtocol(asyncio.Protocol):
    """One connection: requests are answered in order, one at a time."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.buffer = b""
        self.busy = False
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=4 * CHUNK)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.process()

    def process(self) -> None:
        while not self.busy and not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.handle(head)

    def handle(self, head: bytes) -> None:
        request_line, _, fields = head.partition(b"\r\n")
        method, target, version = [*request_line.split(b" "), b"", b""][:3]
        path = target.split(b"?", 1)[0]
        lowered = fields.lower()
        keep_alive = (
            b"connection: keep-alive" in lowered
            if version == b"HTTP/1.0"
            else b"connection: close" not in lowered
        )
        control = self.site.control(path)
        if control is not None:
            self.transport.write(control)
            return
        response = self.site.lookup(path)
        send_body = method != b"HEAD"
        if self.site.delay:
            self.busy = True
            loop = asyncio.get_running_loop()
            loop.call_later(self.site.delay, self.respond, response, send_body, keep_alive)
        else:
            self.respond(response, send_body, keep_alive)

    def respond(
        self, response: tuple[bytes, bytes] | tuple[bytes, Path], send_body: bool, keep: bool
    ) -> None:
        if self.closed:
            return
        head, body = response
        if isinstance(body, Path):
            self.busy = True
            asyncio.get_running_loop().create_task(self.stream(head, body, send_body, keep))
            return
        self.transport.write(head + body if send_body else head)
        self.site.last = time.monotonic()
        self.done(keep)

    async def stream(self, head: bytes, file: Path, send_body: bool, keep: bool) -> None:
        self.transport.write(head)
        if send_body:
            with file.open("rb") as source:
                while not self.closed and (chunk := source.read(CHUNK)):
                    self.transport.write(chunk)
                    await self.writable.wait()
        self.done(keep)

    def done(self, keep_alive: bool) -> None:
        self.busy = False
        if not keep_alive:
            self.transport.close()
            self.closed = True
            return
        if self.buffer:
            self.process()


async def serve(root: Path, host: str, port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    site = Site(root, delay)
    server = await loop.create_server(
        lambda: HttpProtocol(site), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each response")
    args = parser.parse_args()
    coroutine = serve(args.root, args.host, args.port, args.delay)
    if uvloop is not None:
        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
