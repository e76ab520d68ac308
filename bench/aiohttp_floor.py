"""The cheapest aiohttp client this bench knows how to write, as a floor for the others: it
fetches every URL and keeps nothing but each body's length.

    python bench/aiohttp_floor.py PAIRS REPORT [--concurrency N]

PAIRS holds one ``URL<TAB>PATH`` a line (the path is ignored). uvloop when installed, one
coroutine per connection taking the next URL (no task per URL), no cookie jar, no
decompression. REPORT gets ``{"URL": length, ...}`` at the end, for the bench's check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator

import aiohttp

try:
    import uvloop
except ImportError:
    uvloop = None


async def worker(session: aiohttp.ClientSession, urls: Iterator[str], lengths: dict) -> None:
    for url in urls:
        async with session.get(url) as resp:
            body = await resp.read()
            lengths[url] = len(body) if resp.status == 200 else -resp.status


async def main(urls: list[str], concurrency: int) -> dict[str, int]:
    lengths: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=600)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as session:
        shared = iter(urls)
        await asyncio.gather(*(worker(session, shared, lengths) for _ in range(concurrency)))
    return lengths


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("pairs")
    parser.add_argument("report")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with open(args.pairs, encoding="utf-8") as lines:
        urls = [line.split("\t", 1)[0] for line in lines if line.strip()]
    run = uvloop.run if uvloop is not None else asyncio.run
    lengths = run(main(urls, args.concurrency))
    with open(args.report, "w", encoding="utf-8") as report:
        json.dump(lengths, report)
