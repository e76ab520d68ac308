"""Sitemaps (sitemaps.org 0.9) for crawl mode's ``sitemaps: true``: read the ones robots.txt
lists, plain or gzipped, following sitemap indexes, within fixed bounds. Fetching is the
caller's (a callable returning the body or None); this module parses and walks."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

# Bounds, from the protocol where it sets one: 50,000 URLs and 50 MB uncompressed per file.
MAX_URLS_PER_FILE = 50_000
MAX_UNCOMPRESSED = 50 * 1024 * 1024
# Indexes list sitemaps, not other indexes; one extra level is tolerated, no more.
MAX_NESTING = 2
MAX_FILES_PER_HOST = 100

_LOC = re.compile(
    rb"<(?:[\w.-]+:)?loc\s*>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</(?:[\w.-]+:)?loc\s*>", re.S
)
_INDEX = re.compile(rb"<(?:[\w.-]+:)?sitemapindex[\s>]")

Get = Callable[[str], Awaitable[bytes | None]]


class SitemapError(ValueError):
    """A sitemap that cannot be read: broken gzip, or larger than the protocol allows."""


def gunzip(data: bytes, limit: int = MAX_UNCOMPRESSED) -> bytes:
    """``data`` itself, or decompressed when it is gzip (sitemap.xml.gz is served as a plain
    file, not with Content-Encoding). Raises SitemapError past ``limit`` or when broken."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise SitemapError(f"broken gzip: {exc}") from exc
    if len(out) > limit:
        raise SitemapError(f"larger than {limit} bytes uncompressed")
    return out


def parse(data: bytes) -> tuple[bool, list[str]]:
    """(whether it is a sitemap index, the ``<loc>`` URLs it lists, at most 50,000). A regular
    expression rather than an XML parser: it needs only ``<loc>``, tolerates the broken XML
    real sites serve, and cannot be made to expand entities."""
    is_index = _INDEX.search(data) is not None
    locs = []
    for match in _LOC.finditer(data):
        text = html.unescape(match.group(1).decode("utf-8", "replace")).strip()
        if text:
            locs.append(text)
            if len(locs) >= MAX_URLS_PER_FILE:
                break
    return is_index, locs


def _read(body: bytes) -> tuple[bool, list[str]]:
    return parse(gunzip(body))


async def walk(roots: list[str], get: Get) -> AsyncIterator[tuple[str, list[str]]]:
    """(sitemap URL, the page URLs it lists) for each sitemap of ``roots`` and of the indexes
    among them, in order, within the module's bounds; the caller may stop early. A sitemap
    that cannot be downloaded or parsed is skipped (``get`` warns of a failed download)."""
    queue = deque((url, 0) for url in roots)
    seen: set[str] = set()
    while queue and len(seen) < MAX_FILES_PER_HOST:
        url, level = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        body = await get(url)
        if body is None:
            continue
        try:
            is_index, locs = await asyncio.to_thread(_read, body)
        except SitemapError as exc:
            log.warning("sitemap %s skipped: %s", url, exc)
            continue
        if not is_index:
            yield url, locs
        elif level < MAX_NESTING:
            queue.extend((loc, level + 1) for loc in locs)
