"""Is this a usable http(s) URL? One check for the job file, urls_files and crawl links."""

from __future__ import annotations

import re

from yarl import URL

_HOST_RE = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=:-]+$")  # RFC 3986 reg-name or IP literal


def url_problem(value: str) -> str | None:
    """Why ``value`` is not a usable http(s) URL, or None when it is."""
    parsed = parse_http_url(value)
    return parsed if isinstance(parsed, str) else None


def parse_http_url(value: str) -> URL | str:
    """The parsed URL, or why ``value`` is not a usable http(s) URL."""
    try:
        url = URL(value.strip())
        host = url.raw_host
    except (ValueError, TypeError) as exc:
        return f"invalid URL {value!r}: {exc}"
    if url.scheme not in ("http", "https"):
        return f"URL must be http or https: {value!r}"
    if not host:
        return f"URL has no host: {value!r}"
    if not _HOST_RE.match(host):
        return f"URL has an invalid host {host!r}: {value!r}"
    return url
