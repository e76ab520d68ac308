"""Durable run state in OUT/.crawler/state.sqlite3: runs, finished requests, claimed file
names and conditional-request validators.

sqlite3 in WAL mode: one file, crash-safe transactions, readable while written, and lookups
by key without loading millions of keys into memory. Writes are batched into one transaction
(see ``flush``) and always follow the manifest line, which follows the file: after a crash the
manifest tail past the last commit is replayed into the state (``recover``), so a request whose
file and manifest line exist is never fetched again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LocalError

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
"""


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional refetch sends, and what a 304 keeps."""

    etag: str | None
    last_modified: str | None
    path: str
    bytes: int | None
    sha256: str | None
    content_type: str | None
    charset: str | None


@dataclass(frozen=True, slots=True)
class DoneRow:
    key: str
    ok: bool
    kind: str | None
    status: int | None
    bytes: int | None
    attempts: int


class RunState:
    """The state database of one output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.flush_ms = 0.0
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash; a power loss may drop the
        # last commits, which the manifest replay in ``recover`` then restores.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._done: list[DoneRow] = []
        self._names: dict[tuple[str, str], str] = {}
        self._validators: list[tuple[str, Validators]] = []
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

    # --- recovery --------------------------------------------------------------------------

    def recover(self, manifest: Path) -> int:
        """Replay manifest lines of this run written after the last commit; returns how many.
        A torn last line (a crash mid-write) is cut off."""
        row = self.db.execute(
            "SELECT manifest_offset FROM runs WHERE id = ?", (self.run_id,)
        ).fetchone()
        offset = int(row[0]) if row else 0
        if not manifest.exists():
            return 0
        replayed = 0
        with manifest.open("rb+") as handle:
            handle.seek(offset)
            good_end = offset
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                good_end += len(raw)
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if record.get("run") != self.run_id or "key" not in record:
                    continue
                self.add_done(
                    DoneRow(
                        record["key"],
                        bool(record["ok"]),
                        (record.get("error") or {}).get("kind"),
                        record.get("status"),
                        record.get("bytes"),
                        int(record.get("attempts") or 1),
                    )
                )
                if record.get("path") and record.get("job"):
                    rel = str(record["path"]).split("/", 1)[-1]
                    self._names[(record["job"], rel.lower())] = record["key"]
                replayed += 1
            handle.truncate(good_end)
        self.flush(good_end)
        return replayed

    # --- per request -----------------------------------------------------------------------

    def is_done(self, key: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM done WHERE run = ? AND key = ?", (self.run_id, key)
        ).fetchone()
        return row is not None

    def claim_name(self, job: str, name: str, key: str) -> bool:
        """Reserve ``name`` (compared ignoring case) for request ``key`` in this run's job;
        False when another request already holds it."""
        folded = (job, name.lower())
        holder = self._names.get(folded)
        if holder is None:
            row = self.db.execute(
                "SELECT key FROM names WHERE run = ? AND job = ? AND folded = ?",
                (self.run_id, job, folded[1]),
            ).fetchone()
            holder = str(row[0]) if row else None
        if holder is None:
            self._names[folded] = key
            return True
        return holder == key

    def add_done(self, row: DoneRow) -> None:
        self._done.append(row)

    def validators(self, key: str) -> Validators | None:
        row = self.db.execute(
            "SELECT etag, last_modified, path, bytes, sha256, content_type, charset "
            "FROM validators WHERE key = ?",
            (key,),
        ).fetchone()
        return Validators(*row) if row else None

    def set_validators(self, key: str, value: Validators) -> None:
        self._validators.append((key, value))

    @property
    def pending(self) -> int:
        return len(self._done)

    def flush(self, manifest_offset: int) -> None:
        """Commit everything batched so far in one transaction. Raises LocalError when the
        disk refuses; the batch is kept and the manifest replay restores it on resume."""
        try:
            self._commit(manifest_offset)
        except sqlite3.Error as exc:
            raise LocalError(f"cannot write the run state {self.path}: {exc}") from exc

    def _commit(self, manifest_offset: int) -> None:
        if not (self._done or self._names or self._validators) and manifest_offset <= 0:
            return
        started = time.perf_counter()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.run_id, d.key, d.ok, d.kind, d.status, d.bytes, d.attempts)
                    for d in self._done
                ],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO names VALUES (?, ?, ?, ?)",
                [(self.run_id, job, folded, key) for (job, folded), key in self._names.items()],
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
                    for k, v in self._validators
                ],
            )
            if manifest_offset > 0:
                self.db.execute(
                    "UPDATE runs SET manifest_offset = ? WHERE id = ?",
                    (manifest_offset, self.run_id),
                )
        self._done.clear()
        self._names.clear()
        self._validators.clear()
        self.flush_ms = (time.perf_counter() - started) * 1000

    # --- summary ---------------------------------------------------------------------------

    def totals(self) -> dict[str, object]:
        """Counts over the whole run, resumed parts included."""
        q = self.db.execute
        run = (self.run_id,)
        requests, ok, size, attempts = q(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0), COALESCE(SUM(bytes), 0), "
            "COALESCE(SUM(attempts), 0) FROM done WHERE run = ?",
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
            "retries": attempts - requests,
            "by_kind": by_kind,
            "by_status": by_status,
        }

    def close(self) -> None:
        self.db.close()
