"""One HTTP attempt: send the request, read the body within limits, and translate every
aiohttp/asyncio exception into the contract's error kinds (C8), here and nowhere else.
No retry decisions and no disk writes except spilling a large body to a temp file."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase
from multidict import CIMultiDictProxy

from ..config.spec import JobSpec
from ..errors import LocalError
from ..outcome import Kind, TooLarge, TooManyRedirects, classify
from ..output.storage import local_error
from ..tasks.expand import FetchTask
from .cookies import keep as keep_cookies
from .cookies import request_cookies
from .decode import Decoder
from .exchange import REDIRECTS, Exchange, next_hop, received_headers
from .options import env_proxy, request_headers, ssl_setting, without_credentials

log = logging.getLogger(__name__)

# Bodies up to this size stay in memory; larger ones stream to a temp file in chunks.
SPILL_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024
# A spilled body goes to its temp file in writes of about this size: one executor trip each.
_SPILL_WRITE = 1024 * 1024
# The most buffers one writev call takes (1024 on Linux).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(slots=True)
class Attempt:
    """What one attempt produced: a response (maybe an error status) or an error kind."""

    status: int | None = None
    final_url: str | None = None
    headers: CIMultiDictProxy[str] | None = None
    body: bytes = b""
    spill: Path | None = None  # the body, when it was too large to keep in memory
    spill_sha256: Any = None  # hashlib.sha256 of the spilled body, fed as it streams in
    size: int = 0
    kind: str | None = None
    message: str | None = None
    # No connection could be made (refused, DNS, unreachable, connect timeout): what the
    # per-host breaker counts (C17). A TLS failure is a connection, so it does not count.
    connect_failed: bool = False
    # The response's headers as received (names as sent, repeats joined with ", "), kept
    # only when the manifest records them (C8, C17).
    received_headers: dict[str, str] | None = None
    # save: warc: every hop as sent and received (its last one holds the final response);
    # raw_body is the final body as received when crawler undid a Content-Encoding.
    exchanges: list[Exchange] | None = None
    raw_body: bytes | None = None

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type") if self.headers is not None else None


async def attempt(
    session: aiohttp.ClientSession,
    task: FetchTask,
    extra_headers: dict[str, str] | None,
    spill_path: Callable[[], Path],
) -> Attempt:
    """Make one attempt of ``task``. Never raises for network trouble; CancelledError passes,
    and so does LocalError (the disk refused a spilled body: the run must stop, C1)."""
    job = task.job
    headers = request_headers(job)
    if extra_headers:
        headers = {**headers, **extra_headers}
    proxy = job.proxy or env_proxy(task.url.scheme, task.url.raw_host or "")
    # aiohttp follows max_redirects - 1 redirects and treats 0 as "no limit"; crawler's
    # max_redirects is the number of redirects followed (C2), 0 meaning none.
    follow = job.max_redirects > 0
    result = Attempt()
    try:
        if job.save == "warc" or job.keep_cookies or job.cookies:
            await _hop_by_hop(session, task, headers, proxy, result, spill_path)
            return result
        async with session.request(
            job.method,
            task.url,
            headers=headers,
            data=job.body,
            timeout=job.timeout,
            allow_redirects=follow,
            max_redirects=job.max_redirects + 1,
            proxy=proxy,
            cookies=request_cookies(job, task.url, True),
            ssl=ssl_setting(job.verify),
            # Content-Encoding is undone here, where a stream that ends early is caught.
            auto_decompress=False,
        ) as response:
            _note_response(job, response, result)
            if not follow and _is_redirect(response):
                raise TooManyRedirects(
                    f"redirected to {response.headers.get('Location')} with max_redirects 0"
                )
            if 200 <= response.status < 300 and job.method != "HEAD":
                await _read_body(response, job.max_bytes, result, spill_path)
    except asyncio.CancelledError:
        _discard_spill(result)
        raise
    except LocalError:
        _discard_spill(result)
        raise
    except Exception as exc:
        _discard_spill(result)
        if isinstance(exc, aiohttp.TooManyRedirects) and exc.history:
            last = exc.history[-1]
            result.status, result.final_url = last.status, str(last.url)
            result.kind = Kind.REDIRECTS
            result.message = (
                f"more than {job.max_redirects} redirects (the last to "
                f"{last.headers.get('Location')} from {last.url})"
            )
        else:
            result.kind, result.message = classify(exc)
            result.connect_failed = _is_connect_failure(exc)
        result.body = b""
        result.size = 0
    return result


def _is_connect_failure(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientSSLError):
        return False
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


async def _hop_by_hop(
    session: aiohttp.ClientSession,
    task: FetchTask,
    headers: dict[str, str],
    proxy: str | None,
    result: Attempt,
    spill_path: Callable[[], Path],
) -> None:
    """One attempt with redirects followed here, hop by hop: for a ``save: warc`` job, so
    each hop's request and response (body included, whatever the status) can be archived;
    for a ``keep_cookies`` job, so a cookie a redirect sets goes to its target."""
    job = task.job
    recording = job.save == "warc"
    method, url, body = job.method, task.url, job.body
    origin = task.url.origin()
    exchanges: list[Exchange] = []
    if recording:
        result.exchanges = exchanges
    for hop in range(job.max_redirects + 1):
        same_origin = url.origin() == origin
        async with session.request(
            method,
            url,
            # Credentials stay with the origin they were given for, as aiohttp and browsers
            # do on a redirect elsewhere.
            headers=headers if same_origin else without_credentials(headers),
            data=body,
            timeout=job.timeout,
            allow_redirects=False,
            proxy=proxy,
            cookies=request_cookies(job, url, same_origin),
            ssl=ssl_setting(job.verify),
            auto_decompress=False,
        ) as response:
            _note_response(job, response, result)
            exchange = Exchange(
                method=method,
                url=str(response.url),
                request_headers=response.request_info.headers,
                request_body=body,
                version=_version(response),
                status=response.status,
                reason=response.reason or "",
                response_headers=tuple(response.raw_headers),
            )
            exchanges.append(exchange)
            location = response.headers.get("Location") or response.headers.get("URI")
            if response.status in REDIRECTS and location:
                with exchange.reading():
                    length = response.content_length
                    if length is not None and length > job.max_bytes:
                        raise TooLarge(f"redirect body exceeds max_bytes ({job.max_bytes})")
                    if recording:  # kept within max_bytes, as a final body is
                        chunks: list[bytes] = []
                        size = 0
                        async for data in response.content.iter_any():
                            size += len(data)
                            if size > job.max_bytes:
                                raise TooLarge(f"redirect body exceeds max_bytes ({job.max_bytes})")
                            chunks.append(data)
                        exchange.payload = b"".join(chunks)
                if hop == job.max_redirects:
                    raise TooManyRedirects(
                        f"more than {job.max_redirects} redirects (the last to {location} "
                        f"from {response.url})"
                    )
                method, url, body = next_hop(method, response.url, response.status, location, body)
                continue
            if not recording:
                if 200 <= response.status < 300 and method != "HEAD":
                    await _read_body(response, job.max_bytes, result, spill_path)
                return
            if method != "HEAD":
                raw: list[bytes] | None = None if job.warc_decompress else []
                with exchange.reading():
                    await _read_body(response, job.max_bytes, result, spill_path, raw)
                exchange.decoded = job.warc_decompress
                if result.raw_body is not None:
                    exchange.payload = result.raw_body
                elif result.spill is None:
                    exchange.payload = result.body
                else:  # the body is in the spill file: the archive reads it from there
                    exchange.spilled = True
            return


def _note_response(job: JobSpec, response: aiohttp.ClientResponse, result: Attempt) -> None:
    """What every response (each hop, when redirects are followed here) gives the attempt:
    status, final URL and headers; kept cookies; the headers as received when recorded."""
    result.status = response.status
    result.final_url = str(response.url)
    result.headers = response.headers
    if job.keep_cookies:
        keep_cookies(job, response)
    if job.record_headers or job.method in ("HEAD", "OPTIONS"):
        result.received_headers = received_headers(response.raw_headers)


def _version(response: aiohttp.ClientResponse) -> str:
    version = response.version
    return f"{version.major}.{version.minor}" if version is not None else "1.1"


def _is_redirect(response: aiohttp.ClientResponse) -> bool:
    return response.status in _REDIRECT_STATUSES and (
        "Location" in response.headers or "URI" in response.headers
    )


async def _read_body(
    response: aiohttp.ClientResponse,
    max_bytes: int,
    result: Attempt,
    spill_path: Callable[[], Path],
    raw: list[bytes] | None = None,
) -> None:
    """Read the body, counting decompressed bytes against ``max_bytes`` as they arrive. With
    ``raw``, the bytes as received are kept too where a Content-Encoding is undone (an
    archive stores the body as the server sent it)."""
    decoder = Decoder.for_encoding(response.headers.get("Content-Encoding"))
    length = response.content_length
    if decoder is None and length is not None and length <= min(max_bytes, SPILL_BYTES):
        result.body = await response.read()  # the fast path: small, known, not compressed
        result.size = len(result.body)
        if result.size > max_bytes:
            raise TooLarge(f"body exceeds max_bytes ({max_bytes})")
        return
    if decoder is None and length is not None and length > max_bytes:
        raise TooLarge(f"body of {length} bytes exceeds max_bytes ({max_bytes})")
    chunks: list[bytes] = []  # in memory, or (once spilling) waiting for the next write
    pending = 0  # bytes in chunks
    size = 0
    out: AsyncBufferedIOBase | None = None
    # A spilled body's writes and its close run in one thread of their own, in order: were
    # the read cancelled mid-write, the close cannot overtake the write (and free the file
    # descriptor for reuse while the write still holds its number).
    writer: ThreadPoolExecutor | None = None
    unwatch = _fail_body_on_parse_error(response)
    try:
        # iter_any hands over what arrived without copying it into fixed-size pieces.
        async for data in response.content.iter_any():
            if raw is not None and decoder is not None:
                raw.append(data)
            for chunk in decoder.feed(data) if decoder is not None else (data,):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"body exceeds max_bytes ({max_bytes})")
                chunks.append(chunk)
                pending += len(chunk)
                if out is None and size > SPILL_BYTES:
                    result.spill = spill_path()
                    result.spill_sha256 = hashlib.sha256()
                    writer = ThreadPoolExecutor(1, thread_name_prefix="crawler-spill")
                    try:
                        out = await aiofiles.open(result.spill, "wb", executor=writer)
                    except OSError as exc:
                        raise local_error(exc, result.spill) from exc
                if out is not None and pending >= _SPILL_WRITE:
                    await _spill_write(out, writer, chunks, result)
                    chunks.clear()
                    pending = 0
        if decoder is not None:
            decoder.finish()
        if out is not None and chunks:
            await _spill_write(out, writer, chunks, result)
            chunks.clear()
    finally:
        unwatch()
        try:
            if out is not None:
                await out.close()
        except OSError as exc:
            raise local_error(exc, result.spill or "a temp file") from exc
        finally:
            if writer is not None:
                writer.shutdown(wait=False)
    result.size = size
    if result.spill is None:
        result.body = b"".join(chunks)
    if raw is not None and decoder is not None:
        result.raw_body = b"".join(raw)


def _fail_body_on_parse_error(response: aiohttp.ClientResponse) -> Callable[[], None]:
    """Work around aiohttp's C parser: when a body fails to parse after the headers (a bad
    chunk size, say), it closes the connection but never fails the body stream, so reading
    it would hang until the total timeout. When the connection goes, fail the body with the
    parser's error. Returns the function that stops watching."""
    protocol = response.connection.protocol if response.connection is not None else None
    if protocol is None:
        return _nothing
    content = response.content

    def on_closed(_: object = None) -> None:
        error = protocol.exception()
        if error is not None and content.exception() is None and not content.is_eof():
            message = getattr(error, "message", "") or str(error)
            content.set_exception(aiohttp.ClientPayloadError(f"malformed body: {message}"))

    closed = protocol.closed
    if closed is None:  # the connection is gone already
        on_closed()
        return _nothing
    # Asking for `closed` makes aiohttp fill it, with an exception when the connection dies
    # uncleanly; nobody else may ever look at it, so mark it seen (once per connection).
    closed.remove_done_callback(_seen)
    closed.add_done_callback(_seen)
    closed.add_done_callback(on_closed)

    def unwatch() -> None:
        closed.remove_done_callback(on_closed)

    return unwatch


def _nothing() -> None:
    pass


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def _spill_write(
    out: AsyncBufferedIOBase, writer: Executor | None, chunks: list[bytes], result: Attempt
) -> None:
    # The chunks (64 to 128 KiB as they arrive) go to the file in one writev call: not joined
    # first (a copy of every byte), nor written one by one (aiofiles' writelines: a system
    # call per chunk). Nothing is written through ``out``'s own buffer, so it is always empty.
    # They are hashed there too, so the saved file need not be read back (hashlib lets go of
    # the GIL on large inputs, so the event loop goes on meanwhile).
    try:
        await asyncio.get_running_loop().run_in_executor(
            writer, _hash_and_write, out.fileno(), chunks, result.spill_sha256
        )
    except OSError as exc:
        raise local_error(exc, result.spill or "a temp file") from exc


def _hash_and_write(fd: int, chunks: list[bytes], digest: Any) -> None:
    for chunk in chunks:
        digest.update(chunk)
    views = [memoryview(chunk) for chunk in chunks]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


def _discard_spill(result: Attempt) -> None:
    if result.spill is not None:
        result.spill.unlink(missing_ok=True)
        result.spill = None
