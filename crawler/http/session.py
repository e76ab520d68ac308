"""The only place an aiohttp.ClientSession is built: one per run (C4)."""

from __future__ import annotations

import aiohttp

from .charset import fallback_charset


def build_session(concurrency: int, per_host: int) -> aiohttp.ClientSession:
    """A session sized to the run: crawler's own pool keeps at most ``concurrency`` requests in
    flight and ``per_host`` per host, so the connector rarely makes a request wait for a
    connection slot (that wait would count against the request's timeout). Only a redirect
    to another host can: the connector's per-host limit then keeps that host's cap.

    Call it inside the running event loop (the aiodns resolver binds to it)."""
    connector = aiohttp.TCPConnector(
        limit=concurrency,
        limit_per_host=per_host,
        # aiodns, passed explicitly: the threaded resolver costs an executor trip per lookup.
        resolver=aiohttp.AsyncResolver(),
        ttl_dns_cache=300,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Per-request timeouts are always passed; this only guards a call that forgets one.
        timeout=aiohttp.ClientTimeout(total=300),
        fallback_charset_resolver=fallback_charset,
        # Cookies from one URL must not leak into requests of another job.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Keep the response as the server sent it (no requoting of redirect targets).
        requote_redirect_url=False,
        # Proxies from the environment are resolved once per job (see fetch.py), not per
        # request: trust_env=True costs an executor trip on every request.
        trust_env=False,
        auto_decompress=True,
        # Raised from aiohttp's 8190 default: real servers send long cookies and CSP headers.
        max_field_size=65536,
        max_line_size=65536,
    )
