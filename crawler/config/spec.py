"""Frozen, validated specs of a job file and the built-in defaults, in one ordered place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .._version import __version__

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
SAVE_MODES = ("text", "bytes", "json", "jsonl", "warc")
TIMEOUT_FIELDS = ("total", "connect", "sock_connect", "sock_read")

DEFAULT_CONCURRENCY = 32
DEFAULT_PER_HOST = 8
DEFAULT_HOST_DOWN_AFTER = 20
DEFAULT_TIMEOUT: dict[str, float | None] = {
    "total": 300.0,
    "connect": None,
    "sock_connect": None,
    "sock_read": None,
}
DEFAULT_RETRIES = 3
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_REDIRECTS = 10
USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler/crawler)"


def client_timeout(fields: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """An aiohttp ClientTimeout; None turns a field off."""
    return aiohttp.ClientTimeout(
        total=fields.get("total"),
        connect=fields.get("connect"),
        sock_connect=fields.get("sock_connect"),
        sock_read=fields.get("sock_read"),
    )


@dataclass(frozen=True, slots=True)
class UrlSource:
    """Where a job's URLs come from: inline, or a file read lazily line by line."""

    urls: tuple[str, ...] = ()
    urls_file: Path | None = None
    urls_file_as_written: str | None = None  # how the job file names it, for messages


@dataclass(frozen=True, slots=True)
class FollowSpec:
    """Crawl-mode settings of a job (C14)."""

    depth: int = 1
    scope: str = "host"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_pages: int = 10_000
    robots: bool = True
    sitemaps: bool = False
    # Page requisites (C16): what a page needs to display, fetched once each at the page's
    # depth, not as a link hop; on the page's host, or on any host.
    assets: bool = False
    assets_scope: str = "host"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job with its defaults merged in: everything needed to expand and fetch it."""

    name: str
    line: int
    source: UrlSource
    method: str = "GET"
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    secret_headers: frozenset[str] = frozenset()
    body: bytes | None = None
    timeout: aiohttp.ClientTimeout = field(default_factory=lambda: client_timeout(DEFAULT_TIMEOUT))
    save: str = "text"
    encoding: str | None = None
    retries: int = DEFAULT_RETRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    conditional: bool = False
    proxy: str | None = None
    verify: bool | Path = True
    filename: str | None = None
    follow: FollowSpec | None = None
    # C17: the response's headers in each manifest line (always for HEAD and OPTIONS).
    record_headers: bool = False
    # Cookies sent with every request of the job, and whether cookies servers set are kept
    # and sent back within the job (off by default, so runs stay reproducible).
    cookies: tuple[tuple[str, str], ...] = ()
    keep_cookies: bool = False
    # save: warc only: store payloads with their Content-Encoding undone (C16).
    warc_decompress: bool = False


@dataclass(frozen=True, slots=True)
class JobFile:
    """A validated job file. ``output`` is already resolved against the file's folder."""

    path: Path
    output: Path
    concurrency: int
    per_host: int
    rate_per_host: float | None
    jobs: tuple[JobSpec, ...]
    # Consecutive connect failures that mark a host (and port) down (C17); 0: never.
    host_down_after: int = DEFAULT_HOST_DOWN_AFTER


def _merge_by_key(
    base: tuple[tuple[str, str], ...], override: tuple[tuple[str, str], ...], *, fold: bool
) -> tuple[tuple[str, str], ...]:
    """A job's keys replace the default's (all values of that key); the rest are kept."""

    def norm(key: str) -> str:
        return key.lower() if fold else key

    replaced = {norm(k) for k, _ in override}
    return tuple((k, v) for k, v in base if norm(k) not in replaced) + override


def _body(request: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """Serialise the one body key given into bytes and its Content-Type."""
    if "json" in request:
        text = json.dumps(request["json"], ensure_ascii=False, separators=(",", ":"))
        return text.encode(), "application/json"
    if "form" in request:
        return urlencode(request["form"]).encode(), "application/x-www-form-urlencoded"
    if "data" in request:
        return request["data"].encode(), "text/plain; charset=utf-8"
    return None, None


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """The `defaults:` section, validated, ready to merge under each job."""

    values: dict[str, Any]

    def job(
        self,
        *,
        name: str,
        line: int,
        source: UrlSource,
        follow: FollowSpec | None,
        **request: Any,
    ) -> JobSpec:
        """Merge a job's request keys over the defaults (C2 table: headers, params by key;
        timeout field by field, since aiohttp replaces a whole ClientTimeout)."""
        base = self.values
        merged: dict[str, Any] = {**base, **request}

        headers_base, secret_base = base.get("headers") or ({}, set())
        headers_job, secret_job = request.get("headers") or ({}, set())
        headers = _merge_by_key(
            _merge_by_key((("User-Agent", USER_AGENT),), tuple(headers_base.items()), fold=True),
            tuple(headers_job.items()),
            fold=True,
        )
        params = _merge_by_key(base.get("params") or (), request.get("params") or (), fold=False)

        timeout = dict(DEFAULT_TIMEOUT)
        timeout.update(base.get("timeout") or {})
        timeout.update(request.get("timeout") or {})

        body_source = request if any(k in request for k in ("json", "data", "form")) else base
        body, content_type = _body(body_source)
        if content_type and not any(k.lower() == "content-type" for k, _ in headers):
            headers = (*headers, ("Content-Type", content_type))

        names = {k.lower() for k, _ in headers}
        secret = frozenset(n for n in (secret_base | secret_job) if n in names)
        return JobSpec(
            name=name,
            line=line,
            source=source,
            method=merged.get("method", "GET"),
            params=params,
            headers=headers,
            secret_headers=secret,
            body=body,
            timeout=client_timeout(timeout),
            save=merged.get("save", "text"),
            encoding=merged.get("encoding"),
            retries=merged.get("retries", DEFAULT_RETRIES),
            max_bytes=merged.get("max_bytes", DEFAULT_MAX_BYTES),
            max_redirects=merged.get("max_redirects", DEFAULT_MAX_REDIRECTS),
            conditional=merged.get("conditional", False),
            proxy=merged.get("proxy"),
            verify=merged.get("verify", True),
            filename=merged.get("filename"),
            follow=follow,
            record_headers=merged.get("record_headers", False),
            cookies=merged.get("cookies", ()),
            keep_cookies=merged.get("keep_cookies", False),
            warc_decompress=merged.get("warc_decompress", False),
        )
