"""Expand jobs into FetchTasks lazily: URLs with params, request identity. No network, no disk
writes; a urls_file is read line by line so memory does not grow with its length."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

from ..config.spec import JobSpec
from ..urls import parse_http_url, url_problem


@dataclass(slots=True)
class FetchTask:
    """One request to make. ``key`` is its identity: the same method, URL and body in the same
    job give the same key in every run, which is what resume and file names rely on."""

    job: JobSpec
    index: int
    url: URL
    url_text: str
    key: str
    host: str
    attempts: int = 0
    started_at: float = 0.0
    invalid: str | None = None  # why a urls_file line is not a usable URL
    line: int = 0  # the line of its urls_file (or job file) it came from, for messages
    fetch_s: float = 0.0  # time spent in attempts, the waits between them left out
    # Crawl mode (C14): link hops from the job's own URLs, and the page that linked here.
    depth: int | None = None
    referrer: str | None = None


def request_key(job: str, method: str, url: str, body: bytes | None) -> str:
    """A stable 32-hex-digit identity of a request (method, URL with params, body) within its
    job. The job is part of it: the same request listed by two jobs is saved in both job
    folders, so one job finishing it must not make a resumed run skip it for the other."""
    digest = hashlib.sha256(f"{job}\n{method}\n{url}\n".encode())
    if body:
        digest.update(body)
    return digest.hexdigest()[:32]


def iter_urls(job: JobSpec) -> Iterator[tuple[int, str, int]]:
    """(index, url text, source line) for each URL of a job, read lazily."""
    if job.source.urls_file is None:
        for index, url in enumerate(job.source.urls):
            yield index, url, job.line
        return
    yield from iter_urls_file(job.source.urls_file)


def iter_urls_file(path: Path) -> Iterator[tuple[int, str, int]]:
    """One URL a line; blank lines and ``#`` comments skipped, also after a URL when
    whitespace comes before the ``#`` (``URL  # note``; a ``#`` right after a URL is its
    fragment). A UTF-8 BOM (as some editors write) is not part of the first URL."""
    index = 0
    with path.open(encoding="utf-8-sig", errors="replace") as lines:
        for line_no, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if "#" in text:
                text = _COMMENT.split(text, 1)[0]
            yield index, text, line_no
            index += 1


# Whitespace then "#": the rest of a urls_file line is a comment.
_COMMENT = re.compile(r"\s+#")
_SPACE = re.compile(r"\s")


def line_problem(text: str) -> str | None:
    """Why a urls_file line is not a usable http(s) URL (C17: no http or https scheme, no
    host, or whitespace inside), or None."""
    if _SPACE.search(text):
        return f"whitespace inside the URL: {text!r}"
    return url_problem(text)


def make_task(
    job: JobSpec, index: int, url_text: str, from_file: bool = False, line: int = 0
) -> FetchTask:
    """Build the task for one URL of ``job``; an unusable URL is marked, not raised. A
    urls_file line with whitespace inside is not a URL (C17); the job file's own URLs were
    checked when it was read."""
    url: URL | str
    if from_file and _SPACE.search(url_text):
        url = f"whitespace inside the URL: {url_text!r}"
    else:
        url = parse_http_url(url_text)  # parsed once: this runs for every URL of a run
    if isinstance(url, str):
        return FetchTask(
            job,
            index,
            URL(),
            url_text,
            request_key(job.name, job.method, url_text, None),
            "",
            invalid=url,
            line=line,
        )
    if job.params:
        url = url.extend_query(job.params)
    text = str(url)
    # raw_host: url.host decodes IDNA on every call, which dominates expansion of many hosts.
    host = f"{url.raw_host}:{url.port}"
    key = request_key(job.name, job.method, text, job.body)
    return FetchTask(job, index, url, text, key, host, line=line)


def expand_job(job: JobSpec) -> Iterator[FetchTask]:
    from_file = job.source.urls_file is not None
    for index, url_text, line in iter_urls(job):
        yield make_task(job, index, url_text, from_file, line)


def interleave(jobs: tuple[JobSpec, ...]) -> Iterator[FetchTask]:
    """Tasks of all jobs, round-robin, so no job waits for another to finish (C4)."""
    iterators = [expand_job(job) for job in jobs]
    while iterators:
        alive = []
        for iterator in iterators:
            task = next(iterator, None)
            if task is not None:
                yield task
                alive.append(iterator)
        iterators = alive
