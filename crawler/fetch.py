"""One HTTP attempt: send the request, read the body within limits, and translate every
aiohttp/asyncio exception into the contract's error kinds (C8), here and nowhere else.
No retry decisions and no disk writes except spilling a large body to a temp file."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
import brotli  # type: ignore[import-untyped]
from aiofiles.threadpool.binary import AsyncBufferedIOBase
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

from .errors import LocalError
from .expand import FetchTask
from .spec import JobSpec
from .storage import local_error

log = logging.getLogger(__name__)

# Bodies up to this size stay in memory; larger ones stream to a temp file in chunks.
SPILL_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024
# A spilled body goes to its temp file in writes of about this size: one executor trip each.
_SPILL_WRITE = 1024 * 1024
# The most buffers one writev call takes (1024 on Linux).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16
# The codings crawler undoes itself (C5), and so the only ones it asks for.
ACCEPT_ENCODING = "gzip, deflate, br"
# A gzip body may be several members back to back; more than this is not a real body.
_MAX_MEMBERS = 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class TooLarge(Exception):
    """The body grew past max_bytes (counted after decompression)."""


class BrokenEncoding(Exception):
    """The body is not valid in its Content-Encoding, or its compressed stream ended early."""


class TooManyRedirects(Exception):
    """More redirects than the job's max_redirects."""


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

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type") if self.headers is not None else None


def classify(exc: BaseException) -> tuple[str, str]:
    """(error kind, message) for an exception raised while fetching (C8 kinds)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TooLarge):
        return "too_large", message
    if isinstance(exc, BrokenEncoding):
        return "protocol", message
    if isinstance(exc, TooManyRedirects):
        return "redirects", message
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "redirects", f"more than the allowed redirects: {message}"
    if isinstance(exc, aiohttp.RedirectClientError):
        return "redirects", f"redirected to an unusable URL: {message}"
    # A total timeout raises the builtin TimeoutError, not an aiohttp.ClientError.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", message if str(exc) else "timed out"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls", message
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "protocol", message
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol", f"malformed response: {exc.message or message}"
    if isinstance(exc, HttpProcessingError):  # the pure-Python parser raises these as they are
        return "protocol", f"malformed response: {exc.message or message}"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "connect", message
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "connect", f"invalid URL: {message}"
    if isinstance(exc, aiohttp.ClientError | ValueError | UnicodeError):
        return "protocol", message
    # Anything else is unexpected; it still fails this one request only (C12), not the run.
    log.error("unexpected %s while fetching", type(exc).__name__, exc_info=exc)
    return "protocol", f"{type(exc).__name__}: {message}"


# The variables urllib reads for env_proxy, in both cases: the cache is keyed on their values.
_PROXY_VARS = tuple(
    name for base in ("http_proxy", "https_proxy", "no_proxy") for name in (base, base.upper())
)


_HEADERS: dict[int, tuple[JobSpec, dict[str, str]]] = {}


def request_headers(job: JobSpec) -> dict[str, str]:
    """The headers every request of ``job`` sends, built once per job (the job is kept in the
    entry so its id cannot be reused while the entry lives)."""
    entry = _HEADERS.get(id(job))
    if entry is None or entry[0] is not job:
        headers = dict(job.headers)
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers["Accept-Encoding"] = ACCEPT_ENCODING
        if len(_HEADERS) > 1024:
            _HEADERS.clear()
        entry = _HEADERS[id(job)] = (job, headers)
    return entry[1]


_proxy_environment: tuple[str | None, ...] | None = None


def read_proxy_environment() -> None:
    """Take the proxy variables as they are now; a run calls this once at its start, so
    requests do not read the environment one by one."""
    global _proxy_environment
    _proxy_environment = tuple(os.environ.get(name) for name in _PROXY_VARS)


def env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for a host (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), looked
    up once per host and environment instead of once per request."""
    if _proxy_environment is None:
        read_proxy_environment()
    assert _proxy_environment is not None
    return _env_proxy(scheme, host, _proxy_environment)


@lru_cache(maxsize=4096)
def _env_proxy(scheme: str, host: str, _environment: tuple[str | None, ...]) -> str | None:
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(scheme)


def ssl_setting(verify: bool | Path) -> bool | ssl.SSLContext:
    if isinstance(verify, bool):
        return verify
    return _ssl_context(str(verify))


@lru_cache(maxsize=16)
def _ssl_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


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
        async with session.request(
            job.method,
            task.url,
            headers=headers,
            data=job.body,
            timeout=job.timeout,
            allow_redirects=follow,
            max_redirects=job.max_redirects + 1,
            proxy=proxy,
            ssl=ssl_setting(job.verify),
            # Content-Encoding is undone here, where a stream that ends early is caught.
            auto_decompress=False,
        ) as response:
            result.status = response.status
            result.final_url = str(response.url)
            result.headers = response.headers
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
            result.kind = "redirects"
            result.message = (
                f"more than {job.max_redirects} redirects (the last to "
                f"{last.headers.get('Location')} from {last.url})"
            )
        else:
            result.kind, result.message = classify(exc)
        result.body = b""
        result.size = 0
    return result


def _is_redirect(response: aiohttp.ClientResponse) -> bool:
    return response.status in _REDIRECT_STATUSES and (
        "Location" in response.headers or "URI" in response.headers
    )


async def _read_body(
    response: aiohttp.ClientResponse,
    max_bytes: int,
    result: Attempt,
    spill_path: Callable[[], Path],
) -> None:
    """Read the body, counting decompressed bytes against ``max_bytes`` as they arrive."""
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


class Decoder:
    """Undoes one Content-Encoding (gzip, deflate, br) as the body streams in. Each step
    yields at most _CHUNK bytes, so a small compressed body cannot inflate in memory past
    max_bytes before it is counted (a gzip bomb fails fast), and a compressed stream that
    stops before its end marker is an error, not a silently shortened body."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._seen = False
        self._members = 1
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @classmethod
    def for_encoding(cls, header: str | None) -> Decoder | None:
        """A decoder for the header's coding; None when there is nothing crawler undoes
        (no header, identity, or a coding it did not ask for: kept as sent)."""
        name = (header or "").strip().lower()
        name = {"x-gzip": "gzip"}.get(name, name)
        if name not in ("gzip", "deflate", "br"):
            return None
        return cls(name)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        try:
            if self.encoding == "br":
                yield from self._feed_brotli(data)
            else:
                yield from self._feed_zlib(data)
        except (zlib.error, brotli.error) as exc:
            raise BrokenEncoding(f"broken Content-Encoding {self.encoding}: {exc}") from exc

    def finish(self) -> None:
        """The body ended: its compressed stream must have ended too."""
        if not self._seen:
            return  # an empty body: nothing was compressed
        if self._brotli is not None:
            done = bool(self._brotli.is_finished())
        else:
            done = self._zlib is not None and bool(self._zlib.eof)
        if not done:
            raise BrokenEncoding(
                f"broken Content-Encoding {self.encoding}: the compressed stream ended early"
            )

    def _feed_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            # deflate is meant to be zlib-wrapped (RFC 9110 8.4.1.2); some servers send raw
            # deflate, told apart by the first byte as browsers do.
            raw = data[0] & 0x0F != 8
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        self._seen = True
        pending = data
        while pending:
            decompressor = self._zlib
            if decompressor.eof:
                # gzip allows members back to back; anything else after the end of the
                # stream (padding, a stray newline) is ignored, as curl and browsers do.
                if self.encoding != "gzip" or not pending.startswith(b"\x1f\x8b"):
                    return
                self._members += 1
                if self._members > _MAX_MEMBERS:
                    raise BrokenEncoding(f"more than {_MAX_MEMBERS} gzip members")
                decompressor = self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = decompressor.decompress(pending, _CHUNK)
            if chunk:
                yield chunk
            pending = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail

    def _feed_brotli(self, data: bytes) -> Iterator[bytes]:
        self._seen = True
        decompressor = self._brotli
        if not hasattr(decompressor, "can_accept_more_data"):  # Brotli < 1.2: no output limit
            yield decompressor.process(data)
            return
        chunk = decompressor.process(data, output_buffer_limit=_CHUNK)
        while True:
            if chunk:
                yield chunk
            if decompressor.can_accept_more_data():
                return
            chunk = decompressor.process(b"", output_buffer_limit=_CHUNK)


def _discard_spill(result: Attempt) -> None:
    if result.spill is not None:
        result.spill.unlink(missing_ok=True)
        result.spill = None
