"""Each request once (C17): a request listed twice in one job (the same identity: method, URL
with params, body) is fetched once and counted once.

The keys seen so far are kept in memory up to ``MEMORY_KEYS``, then in a private temporary
SQLite table on disk (deleted when closed), so a list of millions of URLs keeps memory flat.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from .expand import FetchTask

MEMORY_KEYS = 65536


class FirstSeen:
    def __init__(self, memory_keys: int = MEMORY_KEYS) -> None:
        self._memory: set[bytes] = set()
        self._limit = memory_keys
        self._db: sqlite3.Connection | None = None

    def first(self, key: str) -> bool:
        """True the first time ``key`` (32 hex digits) is seen."""
        digest = bytes.fromhex(key) if len(key) == 32 else key.encode()
        if self._db is None:
            if digest in self._memory:
                return False
            self._memory.add(digest)
            if len(self._memory) > self._limit:
                self._spill()
            return True
        cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (digest,))
        return cursor.rowcount == 1

    def _spill(self) -> None:
        db = self._db = sqlite3.connect("")  # "": a temporary database, deleted on close
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")
        db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in self._memory))
        self._memory.clear()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._memory.clear()


def first_only(tasks: Iterator[FetchTask]) -> Iterator[FetchTask]:
    """``tasks`` without the repeats of a request already given."""
    seen = FirstSeen()
    try:
        for task in tasks:
            if seen.first(task.key):
                yield task
    finally:
        seen.close()
