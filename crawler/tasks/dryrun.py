"""`crawler run --dry-run`: print each expanded request as ``METHOD URL -> path``; streams, so
a urls_file of millions of lines needs no more memory than one."""

from __future__ import annotations

import mimetypes
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..config.spec import JobFile
from ..output.layout import Layout
from ..output.sinks import SINKS
from . import naming
from .dedupe import first_only
from .expand import FetchTask, interleave
from .shard import Shard, only_shard
from .validate import UrlWarnings

_GUESS = mimetypes.MimeTypes(filenames=())
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NameClaims:
    """Template names already planned, compared ignoring case, as the run claims them.

    Kept in a private temporary sqlite database (on disk, opened on first use) rather than a
    dict, so planning millions of templated names keeps memory flat."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def claim(self, job: str, name: str, key: str) -> bool:
        """Reserve ``name`` for request ``key``; False when another request holds it."""
        if self._db is None:
            self._db = sqlite3.connect("")  # "": a temporary database, deleted on close
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE names (job TEXT, folded TEXT, key TEXT, PRIMARY KEY (job, folded))"
                " WITHOUT ROWID"
            )
        folded = name.lower()
        self._db.execute("INSERT OR IGNORE INTO names VALUES (?, ?, ?)", (job, folded, key))
        row = self._db.execute(
            "SELECT key FROM names WHERE job = ? AND folded = ?", (job, folded)
        ).fetchone()
        return bool(row) and row[0] == key

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def planned_path(task: FetchTask, names: NameClaims) -> str:
    """The file a request will most likely be saved to; its extension is a guess from the
    URL's path, since the real one follows the response's Content-Type. Names are chosen as a
    run chooses them: the template's, else with the request hash added, else the default."""
    job = task.job
    if job.method in ("HEAD", "OPTIONS"):
        return "-"  # no file: the manifest line records the response's headers
    if job.save == "jsonl":
        return f"{job.name}.jsonl"
    if job.save == "warc":  # the run's id is not known before it starts
        return f"{job.name}/{job.name}-<run>-NNNNN.warc.gz"
    guessed, _ = _GUESS.guess_type(PurePosixPath(task.url.path).name or "x.html", strict=True)
    ext = SINKS[job.save].extension(guessed or "text/html")
    return f"{job.name}/{naming.choose_name(task, ext, names.claim)}"


def _printable(text: str) -> str:
    """A line of input as printed: control characters escaped, never sent to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _warned(tasks: Iterator[FetchTask], warnings: UrlWarnings) -> Iterator[FetchTask]:
    for task in tasks:
        if task.invalid:
            warnings.add_task(task)  # on stderr: data to fix, not a request
        else:
            yield task


def print_dry_run(job_file: JobFile, out: Path | None, shard: Shard | None = None) -> None:
    """Print each request the run would make (of ``shard`` only, when given)."""
    folder = out or job_file.output
    if shard is not None:
        folder = Layout(folder).shard(shard.index, shard.count).out
    root = f"{folder}{os.sep}"
    names = NameClaims()
    write = sys.stdout.write
    warnings = UrlWarnings(sys.stderr.write)
    # Each line that is not a URL is warned about, repeats too (as validate does); each
    # request is listed once.
    tasks = first_only(_warned(interleave(job_file.jobs), warnings))
    if shard is not None:
        tasks = only_shard(tasks, shard)
    try:
        for task in tasks:
            path = planned_path(task, names)
            target = "-" if path == "-" else root + path
            write(f"{task.job.method} {task.url_text} -> {target}\n")
        sys.stdout.flush()
        warnings.finish()
    finally:
        names.close()
