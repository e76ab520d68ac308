"""Servers on 127.0.0.1 (port 0) in a thread of their own, so one archive made by the real
`crawler` command can serve many tests of a module (a module-scoped fixture has no event loop
of the test's)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Served:
    """The base URLs of what ``serving`` started."""

    def __init__(self) -> None:
        self.apps: list[str] = []
        self.raws: list[int] = []


@contextmanager
def serving(
    apps: list[web.Application], raws: list[RawHandler] = (), timeout: float = 10
) -> Iterator[Served]:
    """Serve each app (and each raw handler, which gets the connection once the request's
    head was read) until the block ends."""
    loop = asyncio.new_event_loop()
    served = Served()
    runners: list[web.AppRunner] = []
    servers: list[asyncio.Server] = []
    ready = threading.Event()
    failed: list[BaseException] = []

    async def start() -> None:
        for app in apps:
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            served.apps.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        for handler in raws:
            server = await asyncio.start_server(_raw(handler), "127.0.0.1", 0)
            servers.append(server)
            served.raws.append(server.sockets[0].getsockname()[1])

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller below
            failed.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="warc-test-servers", daemon=True)
    thread.start()
    assert ready.wait(timeout), "the test servers did not start"
    if failed:
        raise failed[0]
    try:
        yield served
    finally:
        stop = asyncio.run_coroutine_threadsafe(_stop(runners, servers), loop)
        stop.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()


def _raw(handler: RawHandler) -> Callable[..., Awaitable[None]]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return wrapped


async def _stop(runners: list[web.AppRunner], servers: list[asyncio.Server]) -> None:
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()
