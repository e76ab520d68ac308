"""What an archive keeps of one HTTP exchange (C16): the request as sent and the response as
received, one per redirect hop. Pure data and the redirect rule; fetch.py fills them in for
``save: warc`` jobs, output/warc.py writes them."""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDictProxy
from yarl import URL

# 301/302 turn a POST into a GET, 303 turns anything but HEAD into a GET (RFC 9110 15.4),
# as aiohttp and browsers do; 307/308 repeat the request as it was.
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(slots=True)
class Exchange:
    method: str
    url: str  # the request's target: WARC-Target-URI
    request_headers: CIMultiDictProxy[str] | None  # as sent (aiohttp's request_info)
    request_body: bytes | None
    version: str  # "1.1"
    status: int
    reason: str
    response_headers: tuple[tuple[bytes, bytes], ...]  # as received, in order
    payload: bytes = b""  # the body as received (chunked framing removed), or decoded
    decoded: bool = False  # payload has its Content-Encoding undone (warc_decompress)


def next_hop(
    method: str, url: URL, status: int, location: str, body: bytes | None
) -> tuple[str, URL, bytes | None]:
    """The request a redirect leads to: (method, absolute URL, body)."""
    target = url.join(URL(location))
    if status == 303 and method != "HEAD":
        return "GET", target, None
    if status in (301, 302) and method == "POST":
        return "GET", target, None
    return method, target, body
