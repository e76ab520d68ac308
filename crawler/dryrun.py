"""`crawler run --dry-run`: print each expanded request as ``METHOD URL -> path``; streams, so
a urls_file of millions of lines needs no more memory than one."""

from __future__ import annotations

import mimetypes
import sys
from pathlib import Path, PurePosixPath

from . import naming
from .expand import FetchTask, interleave
from .spec import JobFile

_GUESS = mimetypes.MimeTypes(filenames=())


def planned_path(task: FetchTask, names: dict[tuple[str, str], str]) -> str:
    """The file a request will most likely be saved to; its extension is a guess from the
    URL's path, since the real one follows the response's Content-Type."""
    job = task.job
    if job.method == "HEAD":
        return "-"
    if job.save == "jsonl":
        return f"{job.name}.jsonl"
    guessed, _ = _GUESS.guess_type(PurePosixPath(task.url.path).name or "x.html", strict=True)
    ext = naming.extension(job.save, guessed or "text/html")
    name = naming.default_name(task.url, task.key, ext)
    if job.filename:
        rendered = naming.render_template(job.filename, task.url, task.key, task.index, ext)
        if rendered:
            holder = names.setdefault((job.name, rendered.lower()), task.key)
            name = rendered if holder == task.key else naming.with_hash(rendered, task.key)
    return f"{job.name}/{name}"


def print_dry_run(job_file: JobFile, out: Path | None) -> None:
    root = out or job_file.output
    names: dict[tuple[str, str], str] = {}
    write = sys.stdout.write
    for task in interleave(job_file.jobs):
        if task.invalid:
            write(f"{task.job.method} {task.url_text} -> invalid URL: {task.invalid}\n")
            continue
        path = planned_path(task, names)
        target = "-" if path == "-" else str(root / path)
        write(f"{task.job.method} {task.url_text} -> {target}\n")
    sys.stdout.flush()
