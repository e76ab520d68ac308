"""Crawl mode's frontier and seen-set: the ``frontier`` table of the run state (state.py), one
row per canonical URL a crawl job has met in this run, queued or not. SQL only; no network.

Every write is its own short transaction, committed at once (WAL with synchronous=NORMAL makes
that cheap): a page's links are in the frontier before the page's manifest line is written, so
a crash can never record a page as done and lose the links it led to. Rows are read back in
small batches in id order (roughly breadth first), which keeps memory flat however large the
crawl; a resumed run reads them again and skips those the ``done`` table lists.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import LocalError
from .base import NewRow, Row

if TYPE_CHECKING:
    from .sqlite import RunState

_INSERT = (
    "INSERT OR IGNORE INTO frontier "
    "(run, job, key, url, depth, referrer, origin, queued, blocked, asset)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
)


class Frontier:
    """The frontier rows of the state's current run."""

    def __init__(self, state: RunState, claim: str) -> None:
        self._db = state.db
        self._path = state.path
        self.run = state.run_id
        # Marks the seeds this process registered, so a URL listed twice is fetched once.
        self._claim = claim

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LocalError(f"cannot write the run state {self._path}: {exc}") from exc

    def forget_other_runs(self) -> None:
        """Drop the frontiers of earlier runs (finished, or abandoned by --fresh)."""
        with self._write() as db:
            db.execute("DELETE FROM frontier WHERE run != ?", (self.run,))

    def register_seeds(
        self, seeds: Sequence[tuple[str, str, str]]
    ) -> list[tuple[int, bool] | None]:
        """Record a job's own URLs, (job, key, url) each, as seen and not queued (they come
        from the job's list). For each: (row id, whether the row was queued before: a link
        found earlier, no longer counted against max_pages), or None when this process has
        registered that URL already (listed twice)."""
        out: list[tuple[int, bool] | None] = []
        with self._write() as db:
            for job, key, url in seeds:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO frontier (run, job, key, url, depth, queued, claim) "
                    "VALUES (?, ?, ?, ?, 0, 0, ?)",
                    (self.run, job, key, url, self._claim),
                )
                if cursor.rowcount:
                    out.append((int(cursor.lastrowid or 0), False))
                    continue
                ident, queued, blocked, claim = db.execute(
                    "SELECT id, queued, blocked, claim FROM frontier WHERE run = ? AND key = ?",
                    (self.run, key),
                ).fetchone()
                if claim == self._claim:
                    out.append(None)
                    continue
                db.execute(
                    "UPDATE frontier SET depth = 0, referrer = NULL, origin = NULL, queued = 0, "
                    "claim = ? WHERE id = ?",
                    (self._claim, ident),
                )
                out.append((int(ident), bool(queued) and blocked is None))
        return out

    def add(
        self,
        rows: Sequence[NewRow],
        limit: int,
        blocked: str | None = None,
        asset: bool = False,
    ) -> int:
        """Queue the rows not seen before, at most ``limit`` of them; returns how many were
        new. ``blocked`` stores them as seen but not to fetch, with that reason; ``asset``
        marks page requisites (C16: not a link hop, not counted toward max_pages)."""
        run = self.run
        with self._write() as db:
            if len(rows) <= limit:
                return db.executemany(
                    _INSERT, [(run, *row, blocked, asset) for row in rows]
                ).rowcount
            added = 0
            for row in rows:
                if added >= limit:
                    break
                added += db.execute(_INSERT, (run, *row, blocked, asset)).rowcount
            return added

    def see(self, job: str, key: str, url: str) -> None:
        """Mark a URL seen without queueing it (where a redirect led)."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO frontier (run, job, key, url, depth, queued) "
                "VALUES (?, ?, ?, ?, 0, 0)",
                (self.run, job, key, url),
            )

    def block(self, key: str, reason: str) -> bool:
        """Mark a URL not to be fetched (robots.txt); True when it was queued until now."""
        with self._write() as db:
            row = db.execute(
                "UPDATE frontier SET blocked = ? WHERE run = ? AND key = ? AND blocked IS NULL "
                "RETURNING queued",
                (reason, self.run, key),
            ).fetchone()
        return bool(row and row[0])

    def read(self, after: int, limit: int) -> list[Row]:
        """Queued rows past id ``after``, not blocked and not finished, in id order."""
        # NOT INDEXED: walk the rowid from ``after``; the (run, key) index would make SQLite
        # scan and sort the whole run's rows on every batch.
        rows = self._db.execute(
            "SELECT id, job, key, url, depth, referrer, origin, asset FROM frontier NOT INDEXED "
            "WHERE id > ? AND run = ? AND queued = 1 AND blocked IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM done WHERE done.run = frontier.run AND done.key = frontier.key) "
            "ORDER BY id LIMIT ?",
            (after, self.run, limit),
        ).fetchall()
        return [Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])) for r in rows]

    def url_of(self, ident: int) -> str | None:
        row = self._db.execute("SELECT url FROM frontier WHERE id = ?", (ident,)).fetchone()
        return str(row[0]) if row else None

    def counts_by_job(self) -> tuple[dict[str, int], dict[str, int]]:
        """(queued rows, blocked rows) per job: what max_pages counts, resumed parts included."""
        queued: dict[str, int] = {}
        blocked: dict[str, int] = {}
        for job, is_blocked, count in self._db.execute(
            "SELECT job, blocked IS NOT NULL, COUNT(*) FROM frontier "
            "WHERE run = ? AND queued = 1 AND asset = 0 GROUP BY job, blocked IS NOT NULL",
            (self.run,),
        ):
            (blocked if is_blocked else queued)[job] = count
        return queued, blocked

    def by_depth(self) -> dict[str, int]:
        """Finished pages (ok or failed) per depth, the whole run."""
        return {
            str(depth): count
            for depth, count in self._db.execute(
                "SELECT f.depth, COUNT(*) FROM frontier f JOIN done d "
                "ON d.run = f.run AND d.key = f.key WHERE f.run = ? "
                "GROUP BY f.depth ORDER BY f.depth",
                (self.run,),
            )
        }

    def blocked(self) -> dict[str, int]:
        """URLs not fetched because of robots.txt, by reason, the whole run."""
        return dict(
            self._db.execute(
                "SELECT blocked, COUNT(*) FROM frontier WHERE run = ? AND blocked IS NOT NULL "
                "GROUP BY blocked",
                (self.run,),
            ).fetchall()
        )
