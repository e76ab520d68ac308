"""What an archive keeps of one HTTP exchange (C16): the request as sent and the response as
received, one per redirect hop. Pure data and the redirect rule; fetch.py fills them in for
``save: warc`` jobs, output/warc.py writes them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from multidict import CIMultiDictProxy
from yarl import URL

from ..outcome import TooLarge

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
    # When the response began to arrive (time.time()): the records' WARC-Date.
    started: float = field(default_factory=time.time)
    payload: bytes = b""  # the body as received (chunked framing removed), or decoded
    decoded: bool = False  # payload has its Content-Encoding undone (warc_decompress)
    # The payload is not in ``payload`` but in the attempt's spill file (too large to keep in
    # memory; only ever the final hop's, and only when it is stored as the spill holds it).
    spilled: bool = False
    # Why the payload is not the whole body (its reading failed): a WARC-Truncated reason,
    # "length" (max_bytes), "time" (a timeout) or "disconnect"; None when it is whole.
    truncated: str | None = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around reading the body: when that fails, the exchange is marked truncated (its
        status and headers arrived, so it is still archived, but not as whole)."""
        try:
            yield
        except TooLarge:
            self.truncated = "length"
            raise
        except TimeoutError:  # asyncio's and aiohttp's timeouts are TimeoutErrors
            self.truncated = "time"
            raise
        except Exception:
            self.truncated = "disconnect"
            raise


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


def received_headers(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """Header names as the server spelled them (the first spelling of each), values of a
    repeated header joined with ", "."""
    joined: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("utf-8", "replace")
        folded = name.lower()
        first = spelled.setdefault(folded, name)
        joined[first] = f"{joined[first]}, {value}" if first in joined else value
    return joined
