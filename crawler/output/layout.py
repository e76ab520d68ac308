"""Where everything lives in an output folder, in one place (C8, C11, C13, C15).

    OUT/manifest.jsonl           one line per finished request
    OUT/<job>/...                the saved files
    OUT/.crawler/lock            held by the one process writing OUT
    OUT/.crawler/state.sqlite3   the run state (state/sqlite.py)
    OUT/.crawler/tmp/            temp and spill files, emptied when a run starts
    OUT/.crawler/runs/<run>.json and last.json: summaries
    OUT/shards/K-of-N/           a shard's own output folder, laid out as OUT is

Everything a process writes lives under the one output folder it holds the lock of, so two
processes writing different shards under one OUT never touch each other's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.jsonl"
PRIVATE = ".crawler"


@dataclass(frozen=True, slots=True)
class Layout:
    out: Path

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST

    @property
    def private(self) -> Path:
        return self.out / PRIVATE

    @property
    def lock(self) -> Path:
        return self.private / "lock"

    @property
    def state(self) -> Path:
        return self.private / "state.sqlite3"

    @property
    def tmp(self) -> Path:
        return self.private / "tmp"

    @property
    def runs(self) -> Path:
        return self.private / "runs"

    @property
    def last(self) -> Path:
        return self.private / "last.json"

    def summary(self, run: str) -> Path:
        return self.runs / f"{run}.json"

    def report(self, run: str) -> Path:
        return self.private / f"report-{run}.html"

    @property
    def shards_root(self) -> Path:
        return self.out / "shards"

    def shard(self, index: int, count: int) -> Layout:
        """The output folder of shard ``index`` of ``count`` under this one."""
        return Layout(self.shards_root / shard_name(index, count))


def shard_name(index: int, count: int) -> str:
    return f"{index}-of-{count}"
