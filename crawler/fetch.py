"""One HTTP attempt: send the request, read the body within limits, and translate every
aiohttp/asyncio exception into the contract's error kinds (C8), here and nowhere else.
No retry decisions and no disk writes except spilling a large body to a temp file."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import aiofiles
import aiohttp
from multidict import CIMultiDictProxy

from .errors import LocalError
from .expand import FetchTask
from .storage import local_error

# Bodies up to this size stay in memory; larger ones stream to a temp file in chunks.
SPILL_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024


class TooLarge(Exception):
    """The body grew past max_bytes (counted after decompression)."""


@dataclass(slots=True)
class Attempt:
    """What one attempt produced: a response (maybe an error status) or an error kind."""

    status: int | None = None
    final_url: str | None = None
    headers: CIMultiDictProxy[str] | None = None
    body: bytes = b""
    spill: Path | None = None  # the body, when it was too large to keep in memory
    size: int = 0
    kind: str | None = None
    message: str | None = None
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type") if self.headers is not None else None


def classify(exc: BaseException) -> tuple[str, str]:
    """(error kind, message) for an exception raised while fetching (C8 kinds)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TooLarge):
        return "too_large", message
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "redirects", f"more than the allowed redirects: {message}"
    # A total timeout raises the builtin TimeoutError, not an aiohttp.ClientError.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", message if str(exc) else "timed out"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls", message
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "protocol", message
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol", f"malformed response: {exc.message or message}"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "connect", message
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "connect", f"invalid URL: {message}"
    if isinstance(exc, aiohttp.ClientError | ValueError | UnicodeError):
        return "protocol", message
    raise exc


@lru_cache(maxsize=4096)
def env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for a host (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), looked
    up once per host instead of once per request."""
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
    """Make one attempt of ``task``. Never raises for network trouble; CancelledError passes."""
    job = task.job
    headers = dict(job.headers)
    if extra_headers:
        headers.update(extra_headers)
    proxy = job.proxy or env_proxy(task.url.scheme, task.url.host or "")
    result = Attempt()
    try:
        async with session.request(
            job.method,
            task.url,
            headers=headers,
            data=job.body,
            timeout=job.timeout,
            max_redirects=job.max_redirects,
            proxy=proxy,
            ssl=ssl_setting(job.verify),
        ) as response:
            result.status = response.status
            result.final_url = str(response.url)
            result.headers = response.headers
            if 200 <= response.status < 300 and job.method != "HEAD":
                await _read_body(response, job.max_bytes, result, spill_path)
    except (asyncio.CancelledError, LocalError):
        _discard_spill(result)
        raise
    except Exception as exc:
        _discard_spill(result)
        result.kind, result.message = classify(exc)
        result.body = b""
    return result


async def _read_body(
    response: aiohttp.ClientResponse,
    max_bytes: int,
    result: Attempt,
    spill_path: Callable[[], Path],
) -> None:
    """Read the body, counting decompressed bytes against ``max_bytes`` as they arrive."""
    length = response.content_length
    if (
        length is not None
        and length <= min(max_bytes, SPILL_BYTES)
        and "Content-Encoding" not in response.headers
    ):
        result.body = await response.read()  # the fast path: small, known, not compressed
        result.size = len(result.body)
        if result.size > max_bytes:
            raise TooLarge(f"body exceeds max_bytes ({max_bytes})")
        return
    chunks: list[bytes] = []
    size = 0
    out = None
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"body exceeds max_bytes ({max_bytes})")
            try:
                if out is not None:
                    await out.write(chunk)
                    continue
                chunks.append(chunk)
                if size > SPILL_BYTES:
                    result.spill = spill_path()
                    out = await aiofiles.open(result.spill, "wb")
                    await out.write(b"".join(chunks))
                    chunks.clear()
            except OSError as exc:  # our disk, not the network: this stops the run
                raise local_error(exc, result.spill or "the temp folder") from exc
    finally:
        if out is not None:
            with contextlib.suppress(OSError):
                await out.close()
    result.size = size
    if result.spill is None:
        result.body = b"".join(chunks)


def _discard_spill(result: Attempt) -> None:
    if result.spill is not None:
        result.spill.unlink(missing_ok=True)
        result.spill = None
