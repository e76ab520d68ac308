"""Download many URLs with aiohttp, the way its tutorial shows: one ClientSession, an
asyncio.Semaphore for the concurrency, asyncio.gather over all URLs.

    python bench/plain_aiohttp.py PAIRS [--concurrency N] [--mode bytes|text|json]

PAIRS holds one ``URL<TAB>PATH`` a line. The one change from the tutorial: the connector's
limit (100 by default) follows the semaphore, else a semaphore above 100 means nothing.
"""

# Written as a user would, on purpose: plain open() in the coroutine, no context manager.
# ruff: noqa: ASYNC230, SIM115

import argparse
import asyncio
import json

import aiohttp


async def fetch(session, semaphore, url, path, mode):
    async with semaphore, session.get(url) as resp:
        resp.raise_for_status()
        if mode == "text":
            text = await resp.text()
            open(path, "w", encoding="utf-8").write(text)
        elif mode == "json":
            data = await resp.json()
            json.dump(data, open(path, "w", encoding="utf-8"), ensure_ascii=False)
        else:
            body = await resp.read()
            open(path, "wb").write(body)


async def main(pairs, concurrency, mode):
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(fetch(session, semaphore, url, path, mode) for url, path in pairs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("pairs")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mode", choices=("bytes", "text", "json"), default="bytes")
    args = parser.parse_args()
    with open(args.pairs, encoding="utf-8") as lines:
        pairs = [line.rstrip("\n").split("\t") for line in lines if line.strip()]
    asyncio.run(main(pairs, args.concurrency, args.mode))
