"""Is this a usable http(s) URL? One check for the job file, urls_files and crawl links."""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

from .errors import one_line

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
        url.port  # noqa: B018  (yarl checks the port's range here)
    except Exception as exc:  # yarl raises IndexError too, for "http://[::1]@"
        # yarl's message may quote the URL raw (a C1 control such as \x9b drives terminals).
        return f"invalid URL {value!r}: {one_line(str(exc)) or type(exc).__name__}"
    if url.scheme not in ("http", "https"):
        return f"URL must be http or https: {value!r}"
    if not host:
        return f"URL has no host: {value!r}"
    if not _HOST_RE.match(host):
        return f"URL has an invalid host {host!r}: {value!r}"
    if ":" in host:
        if not _is_ipv6(host):
            # yarl takes "[1:2]" and writes it back as "http://1:2/", another URL altogether.
            return f"URL has an invalid IPv6 address [{host}]: {value!r}"
    elif "%" in host:
        # No DNS name holds a %; "http://%2F/" would read back as another URL.
        return f"URL has a percent-encoded host {host!r}: {value!r}"
    return url


def _is_ipv6(host: str) -> bool:
    """An IPv6 literal as yarl holds it (without brackets; a zone as ``%25eth0``)."""
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
