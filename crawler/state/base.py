"""What a run remembers between invocations, as two small protocols: ``RunStore`` (runs,
finished requests, claimed file names, conditional validators) and ``FrontierStore`` (crawl
mode's seen-set and queue). ``sqlite.py`` implements both; a second store implements these
and passes ``tests/state/test_store_contract.py``.

Durability, the promise every implementation keeps:
- ``add_done`` and ``set_validators`` only batch; nothing is durable until ``commit`` returns.
  The runner commits a batch only after the files and manifest lines it covers are synced,
  so a committed row never stands for a file that a power loss could take back.
- ``claim_name``, ``start_run``, ``finish_run`` and every ``FrontierStore`` write are durable
  when they return (they must outlive a crash of the very next instant).
- ``committed_manifest_offset`` is how far the manifest was covered at the last commit; a
  resumed run replays the manifest past it (see output/manifest.py) into ``add_done``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


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
    """A finished request (succeeded, or failed after its retries) of the current run."""

    key: str
    ok: bool
    kind: str | None
    status: int | None
    bytes: int | None
    attempts: int


@dataclass(slots=True)
class Batch:
    """State rows waiting for one transaction, and how far the manifest covers them."""

    done: list[DoneRow] = field(default_factory=list)
    validators: list[tuple[str, Validators]] = field(default_factory=list)
    manifest_offset: int = 0


# A link to fetch: (job, key, canonical url, depth, referrer, origin).
NewRow = tuple[str, str, str, int, str | None, int | None]


@dataclass(frozen=True, slots=True)
class Row:
    """A queued URL as read back from the frontier."""

    id: int
    job: str
    key: str
    url: str
    depth: int
    referrer: str | None
    origin: int | None
    asset: bool = False  # a page requisite (C16), not a page


class FrontierStore(Protocol):
    """Crawl mode's frontier of the store's current run: one row per canonical URL a crawl
    job met, queued or not. Every write is durable when it returns: a page's links are stored
    before its manifest line is written, so a crash never loses the links of a page it
    records as done."""

    def forget_other_runs(self) -> None: ...

    def register_seeds(
        self, seeds: Sequence[tuple[str, str, str]]
    ) -> list[tuple[int, bool] | None]: ...

    def add(
        self,
        rows: Sequence[NewRow],
        limit: int,
        blocked: str | None = None,
        asset: bool = False,
    ) -> int: ...

    def see(self, job: str, key: str, url: str) -> None: ...

    def block(self, key: str, reason: str) -> bool: ...

    def read(self, after: int, limit: int) -> list[Row]: ...

    def url_of(self, ident: int) -> str | None: ...

    def counts_by_job(self) -> tuple[dict[str, int], dict[str, int]]: ...

    def by_depth(self) -> dict[str, int]: ...

    def blocked(self) -> dict[str, int]: ...


class RunStore(Protocol):
    """The durable state of one output folder: its runs and what the current one finished."""

    run_id: str

    # --- runs: durable when they return ---------------------------------------------------
    def unfinished_run(self) -> str | None:
        """The latest run that never finished (exit 0 or 1), if any."""

    def start_run(self, run_id: str, started_at: str) -> None:
        """Begin a new current run; an unfinished earlier one is abandoned."""

    def resume_run(self, run_id: str) -> None:
        """Make ``run_id`` (from ``unfinished_run``) the current run again."""

    def run_started_at(self) -> str: ...

    def finish_run(self, finished_at: str, exit_code: int) -> None:
        """Mark the current run finished: the next invocation starts a new one."""

    def committed_manifest_offset(self) -> int:
        """How far the manifest was covered by the current run's last commit."""

    # --- per request ----------------------------------------------------------------------
    def has_done(self) -> bool: ...

    def is_done(self, key: str) -> bool:
        """Whether the current run has a committed finished row for ``key`` (a batched row is
        not done yet: the run asks only after recovery committed the replayed rows)."""

    def claim_name(self, job: str, name: str, key: str) -> bool:
        """Reserve ``name`` (ignoring case) in ``job`` for request ``key``; False when another
        request holds it. Durable when it returns."""

    def add_done(self, row: DoneRow) -> None:
        """Batch a finished request; durable after the next ``commit``."""

    def validators(self, key: str) -> Validators | None: ...

    def set_validators(self, key: str, value: Validators) -> None:
        """Batch the validators of a successful fetch; durable after the next ``commit``."""

    # --- commits --------------------------------------------------------------------------
    def seal(self, manifest_offset: int) -> Batch:
        """Take the rows batched so far; the manifest holds their lines up to the offset."""

    def unseal(self, batch: Batch) -> None:
        """Give back a sealed batch that was not committed, ahead of newer rows."""

    def commit(self, batch: Batch) -> None:
        """Make a sealed batch durable, all or nothing. Raises LocalError when the disk
        refuses."""

    def flush(self, manifest_offset: int) -> None:
        """``commit(seal(manifest_offset))``."""

    # --- reading --------------------------------------------------------------------------
    def totals(self) -> dict[str, object]:
        """Counts over the current run, resumed parts included (the summary's totals)."""

    def frontier(self, claim: str) -> FrontierStore:
        """Crawl mode's frontier of the current run; ``claim`` marks this process's seeds."""

    def close(self) -> None: ...
