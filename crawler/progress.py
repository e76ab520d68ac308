"""A live progress line on stderr for people watching a run at a terminal (C13). It reads
counts, never writes state; a few redraws per second at most."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import TextIO

from .manifest import Record

REDRAW_S = 0.25


class Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.done = 0
        self.failed: Counter[str] = Counter()
        self.bytes = 0
        self._started = time.monotonic()

    def update(self, record: Record) -> None:
        self.done += 1
        self.bytes += record.bytes or 0
        if record.error:
            self.failed[record.error["kind"]] += 1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        failed = sum(self.failed.values())
        kinds = " ".join(f"{k}:{v}" for k, v in sorted(self.failed.items()))
        return (
            f"{self.done} done, {failed} failed{f' ({kinds})' if kinds else ''}, "
            f"{self.bytes / 1048576:.1f} MiB, {self.done / elapsed:.0f} req/s, {elapsed:.0f} s"
        )

    def _draw(self, final: bool = False) -> None:
        self.stream.write("\r\x1b[2K" + self.line() + ("\n" if final else ""))
        self.stream.flush()

    async def _loop(self) -> None:
        while True:
            self._draw()
            await asyncio.sleep(REDRAW_S)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._draw(final=True)
