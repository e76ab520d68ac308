"""Durable run state in OUT/.crawler/state.sqlite3: runs, finished requests, claimed file
names and conditional-request validators (plus crawl mode's frontier, which frontier.py owns).

sqlite3 in WAL mode: one file, crash-safe transactions, readable while written, and lookups
by key without loading millions of keys into memory. Writes are batched into one transaction
(see ``flush``) and always follow the manifest line, which follows the file: after a crash the
manifest tail past the last commit is replayed into the state (``recover``), so a request whose
file and manifest line exist is never fetched again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import LocalError
from .base import Batch, DoneRow, Validators
from .frontier import Frontier

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
    exit_code INTEGER, manifest_offset INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS done (
    run TEXT NOT NULL, key TEXT NOT NULL, ok INTEGER NOT NULL, kind TEXT, status INTEGER,
    bytes INTEGER, attempts INTEGER, PRIMARY KEY (run, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names (
    run TEXT NOT NULL, job TEXT NOT NULL, folded TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (run, job, folded)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS validators (
    key TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, path TEXT, bytes INTEGER,
    sha256 TEXT, content_type TEXT, charset TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frontier (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, job TEXT NOT NULL, key TEXT NOT NULL,
    url TEXT NOT NULL, depth INTEGER NOT NULL, referrer TEXT, origin INTEGER,
    queued INTEGER NOT NULL, blocked TEXT, claim TEXT, asset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run, key)
);
"""


class RunState:
    """The state database of one output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash; a power loss may drop the
        # last commits, which the manifest replay in ``recover`` then restores.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(frontier)")}
        if "asset" not in columns:  # a state file written before page requisites existed
            self.db.execute("ALTER TABLE frontier ADD COLUMN asset INTEGER NOT NULL DEFAULT 0")
        self._batch = Batch()
        self.run_id = ""

    # --- runs ------------------------------------------------------------------------------

    def unfinished_run(self) -> str | None:
        row = self.db.execute(
            "SELECT id FROM runs WHERE finished_at IS NULL ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    def start_run(self, run_id: str, started_at: str) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = '', exit_code = -1 WHERE finished_at IS NULL"
        )
        self.db.execute("INSERT INTO runs (id, started_at) VALUES (?, ?)", (run_id, started_at))
        self.run_id = run_id

    def resume_run(self, run_id: str) -> None:
        self.run_id = run_id

    def run_started_at(self) -> str:
        row = self.db.execute("SELECT started_at FROM runs WHERE id = ?", (self.run_id,)).fetchone()
        return str(row[0])

    def finish_run(self, finished_at: str, exit_code: int) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ? WHERE id = ?",
            (finished_at, exit_code, self.run_id),
        )

    def has_done(self) -> bool:
        row = self.db.execute("SELECT 1 FROM done WHERE run = ? LIMIT 1", (self.run_id,)).fetchone()
        return row is not None

    def committed_manifest_offset(self) -> int:
        row = self.db.execute(
            "SELECT manifest_offset FROM runs WHERE id = ?", (self.run_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def frontier(self, claim: str) -> Frontier:
        return Frontier(self, claim)

    # --- per request -----------------------------------------------------------------------

    def is_done(self, key: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM done WHERE run = ? AND key = ?", (self.run_id, key)
        ).fetchone()
        return row is not None

    def claim_name(self, job: str, name: str, key: str) -> bool:
        """Reserve ``name`` (compared ignoring case) for request ``key`` in this run's job;
        False when another request already holds it. Written at once (not batched): a claim
        must outlive a crash, or a resumed run could hand the name to another request."""
        folded = name.lower()
        row = self.db.execute(
            "SELECT key FROM names WHERE run = ? AND job = ? AND folded = ?",
            (self.run_id, job, folded),
        ).fetchone()
        if row is None:
            try:
                self.db.execute(
                    "INSERT INTO names VALUES (?, ?, ?, ?)", (self.run_id, job, folded, key)
                )
            except sqlite3.Error as exc:  # a full disk: the run stops (exit 4), resumable
                raise LocalError(f"cannot write the run state {self.path}: {exc}") from exc
            return True
        return str(row[0]) == key

    def add_done(self, row: DoneRow) -> None:
        self._batch.done.append(row)

    def validators(self, key: str) -> Validators | None:
        row = self.db.execute(
            "SELECT etag, last_modified, path, bytes, sha256, content_type, charset "
            "FROM validators WHERE key = ?",
            (key,),
        ).fetchone()
        return Validators(*row) if row else None

    def set_validators(self, key: str, value: Validators) -> None:
        self._batch.validators.append((key, value))

    def seal(self, manifest_offset: int) -> Batch:
        """Take the rows batched so far; the manifest holds their lines up to the offset."""
        batch, self._batch = self._batch, Batch()
        batch.manifest_offset = manifest_offset
        return batch

    def unseal(self, batch: Batch) -> None:
        """Give back the rows of a sealed batch that was not committed, ahead of newer ones."""
        self._batch.done[:0] = batch.done
        self._batch.validators[:0] = batch.validators

    def flush(self, manifest_offset: int) -> None:
        """Commit everything batched so far (see ``commit``)."""
        self.commit(self.seal(manifest_offset))

    def commit(self, batch: Batch) -> None:
        """Commit a sealed batch in one transaction. Raises LocalError when the disk refuses;
        the manifest replay in ``recover`` restores the rows on resume."""
        try:
            self._commit(batch)
        except sqlite3.Error as exc:
            raise LocalError(f"cannot write the run state {self.path}: {exc}") from exc

    def _commit(self, batch: Batch) -> None:
        if not (batch.done or batch.validators) and batch.manifest_offset <= 0:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.run_id, d.key, d.ok, d.kind, d.status, d.bytes, d.attempts)
                    for d in batch.done
                ],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        k,
                        v.etag,
                        v.last_modified,
                        v.path,
                        v.bytes,
                        v.sha256,
                        v.content_type,
                        v.charset,
                    )
                    for k, v in batch.validators
                ],
            )
            if batch.manifest_offset > 0:
                self.db.execute(
                    "UPDATE runs SET manifest_offset = ? WHERE id = ?",
                    (batch.manifest_offset, self.run_id),
                )

    # --- summary ---------------------------------------------------------------------------

    def totals(self) -> dict[str, object]:
        """Counts over the whole run, resumed parts included."""
        q = self.db.execute
        run = (self.run_id,)
        requests, ok, size, retries = q(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0), COALESCE(SUM(bytes), 0), "
            "COALESCE(SUM(MAX(attempts - 1, 0)), 0) FROM done WHERE run = ?",
            run,
        ).fetchone()
        by_kind = dict(
            q(
                "SELECT kind, COUNT(*) FROM done WHERE run = ? AND kind IS NOT NULL "
                "GROUP BY kind ORDER BY kind",
                run,
            ).fetchall()
        )
        by_status = {
            str(status): count
            for status, count in q(
                "SELECT status, COUNT(*) FROM done WHERE run = ? AND "
                "status IS NOT NULL GROUP BY status ORDER BY status",
                run,
            )
        }
        return {
            "requests": requests,
            "ok": ok,
            "failed": requests - ok,
            "bytes": size,
            "retries": retries,
            "by_kind": by_kind,
            "by_status": by_status,
        }

    def close(self) -> None:
        self.db.close()
