"""The one table of error kinds (C8): what each means, whether it is worth another attempt,
and how reports draw it; ``classify`` turns an exception raised while fetching into one.

A failed request is data, never an exception that stops the run. A new error kind is one row
of ``KINDS`` (and, if an exception produces it, one branch of ``classify``); retry policy,
metrics, reports and the manifest read this table.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """An error kind as the manifest spells it (``error.kind``)."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    HTTP = "http"
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    DECODE = "decode"
    REDIRECTS = "redirects"
    PROTOCOL = "protocol"
    INVALID_URL = "invalid_url"
    HOST_DOWN = "host_down"


@dataclass(frozen=True, slots=True)
class KindInfo:
    retryable: bool  # for ``http``: only the statuses in RETRY_STATUSES
    colour: str  # the report's badge
    meaning: str


KINDS: dict[Kind, KindInfo] = {
    Kind.TIMEOUT: KindInfo(True, "#ef6c00", "a ClientTimeout field ran out"),
    Kind.CONNECT: KindInfo(True, "#c62828", "DNS, refused, reset or closed before a response"),
    Kind.TLS: KindInfo(False, "#6a1b9a", "the TLS handshake or certificate failed"),
    Kind.HTTP: KindInfo(True, "#d84315", "a status that is not 2xx/304 after retries"),
    Kind.TOO_LARGE: KindInfo(False, "#5d4037", "the body passed max_bytes"),
    Kind.INVALID_JSON: KindInfo(False, "#ad1457", "save: json(l) and the body is not JSON"),
    Kind.DECODE: KindInfo(False, "#00838f", "save: text and the body cannot be decoded"),
    Kind.REDIRECTS: KindInfo(False, "#283593", "more than max_redirects, or an unusable target"),
    Kind.PROTOCOL: KindInfo(True, "#455a64", "a malformed response or a broken body"),
    Kind.INVALID_URL: KindInfo(False, "#795548", "a urls_file line that is not an http(s) URL"),
    Kind.HOST_DOWN: KindInfo(False, "#b71c1c", "not attempted: its host kept refusing connects"),
}
UNKNOWN_COLOUR = "#616161"

# Statuses worth another try: the server said "later" or failed on its side (C9).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _info(kind: str) -> KindInfo | None:
    try:
        return KINDS[Kind(kind)]
    except ValueError:  # not a kind of this version (an older manifest's, say)
        return None


def is_retryable(kind: str, status: int | None) -> bool:
    """Whether a failure of this kind (and status, for ``http``) is worth another attempt."""
    if kind == Kind.HTTP:
        return status in RETRY_STATUSES
    info = _info(kind)
    return info is not None and info.retryable


def colour(kind: str) -> str:
    """The report's colour for ``kind``."""
    info = _info(kind)
    return info.colour if info is not None else UNKNOWN_COLOUR


# --- what fetching raises beyond aiohttp's own exceptions -----------------------------------


class TooLarge(Exception):
    """The body grew past max_bytes (counted after decompression)."""


class BrokenEncoding(Exception):
    """The body is not valid in its Content-Encoding, or its compressed stream ended early."""


class TooManyRedirects(Exception):
    """More redirects than the job's max_redirects."""


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in ``package``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return isinstance(name, str) and name.split(".")[0] == package


def classify(exc: BaseException) -> tuple[Kind, str]:
    """(error kind, message) for an exception raised while fetching."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TooLarge):
        return Kind.TOO_LARGE, message
    if isinstance(exc, BrokenEncoding):
        return Kind.PROTOCOL, message
    if isinstance(exc, TooManyRedirects):
        return Kind.REDIRECTS, message
    if isinstance(exc, aiohttp.TooManyRedirects):
        return Kind.REDIRECTS, f"more than the allowed redirects: {message}"
    if isinstance(exc, aiohttp.RedirectClientError):
        return Kind.REDIRECTS, f"redirected to an unusable URL: {message}"
    # A total timeout raises the builtin TimeoutError, not an aiohttp.ClientError.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Kind.TIMEOUT, message if str(exc) else "timed out"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return Kind.TLS, message
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Kind.PROTOCOL, message
    if isinstance(exc, aiohttp.ClientResponseError):
        return Kind.PROTOCOL, f"malformed response: {exc.message or message}"
    if isinstance(exc, HttpProcessingError):  # the pure-Python parser raises these as they are
        return Kind.PROTOCOL, f"malformed response: {exc.message or message}"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return Kind.CONNECT, message
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return Kind.CONNECT, f"invalid URL: {message}"
    if isinstance(exc, IndexError) and _raised_in(exc, "yarl"):
        # yarl fails this way on some URLs (``http://[::1]@``): here, a redirect's Location.
        return Kind.REDIRECTS, f"redirected to an unusable URL: IndexError {message}"
    if isinstance(exc, aiohttp.ClientError | ValueError | UnicodeError):
        return Kind.PROTOCOL, message
    # Anything else is unexpected; it still fails this one request only (C12), not the run.
    log.error("unexpected %s while fetching", type(exc).__name__, exc_info=exc)
    return Kind.PROTOCOL, f"{type(exc).__name__}: {message}"
