"""Expand jobs into FetchTasks lazily: URLs with params, request identity. No network, no disk
writes; a urls_file is read line by line so memory does not grow with its length."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

from ..config.spec import JobSpec
from ..urls import parse_http_url


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
    """One URL a line; blank lines and ``#`` comments skipped. A UTF-8 BOM (as some editors
    write) is not part of the first URL."""
    index = 0
    with path.open(encoding="utf-8-sig", errors="replace") as lines:
        for line_no, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield index, text, line_no
            index += 1


def make_task(job: JobSpec, index: int, url_text: str) -> FetchTask:
    """Build the task for one URL of ``job``; an unusable URL is marked, not raised."""
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
        )
    if job.params:
        url = url.extend_query(job.params)
    text = str(url)
    # raw_host: url.host decodes IDNA on every call, which dominates expansion of many hosts.
    host = f"{url.raw_host}:{url.port}"
    key = request_key(job.name, job.method, text, job.body)
    return FetchTask(job, index, url, text, key, host)


def expand_job(job: JobSpec) -> Iterator[FetchTask]:
    for index, url_text, _ in iter_urls(job):
        yield make_task(job, index, url_text)


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
