"""Crawl mode (C14) within a run: a job with ``follow`` also fetches the in-scope links of the
HTML pages it fetched, each canonical URL once per run, resumes included, obeying robots.txt.

Crawl mode is a task source plus two hooks. As sources, ``seeds`` wraps the job's own URLs
(registered in the frontier as seen, depth 0) and ``next_task`` hands the pool queued links
once the job files' URLs are all out. The worker calls ``admit`` before a follow job's request
(robots.txt and Crawl-delay) and ``discover`` after it (the page's links into the frontier,
before the page's file and manifest line are written). It never sees the pool: Crawl-delay
reaches it through the ``set_host_rate`` callable it is given. Decisions live in links.py,
robots.txt in robots.py, the SQL in state/frontier.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import aiohttp
from yarl import URL

from ..config.spec import FollowSpec, JobSpec
from ..http import fetch
from ..http.fetch import Attempt
from ..output.storage import Storage
from ..state.base import NewRow, Row, RunStore
from ..tasks.expand import FetchTask, request_key
from . import sitemaps
from .assets import is_css, page_requisites, requisites, stylesheet_requisites
from .links import (
    PageLinks,
    Scope,
    accept_all,
    canonical,
    host_key,
    is_html,
    origin_of,
    parse_url,
)
from .robots import MAX_BYTES, MAX_REDIRECTS, Fetched, HostRules, Robots, agent_token

log = logging.getLogger(__name__)

# Frontier rows read, and job URLs registered, per query: small, so memory stays flat.
_BATCH = 256
# Pages up to this size are parsed on the event loop; larger ones in the parse thread.
_INLINE_BYTES = 32 * 1024
# The most of one page read for links (a bigger one was spilled to disk while fetched). Read
# piece by piece (links.PageLinks), so this bounds the time spent on a page, not memory.
_MAX_PARSE_BYTES = 64 * 1024 * 1024
# Scopes of job URLs kept in memory (one per job URL a crawl started from).
_SCOPES = 4096


@dataclass(frozen=True, slots=True)
class CrawlProgress:
    """Where a crawl stands, for the live display (``Crawl.progress``).

    ``pages``: pages of follow jobs the run will fetch as known so far: the job's own URLs
    and the links queued (within max_pages), finished ones included, robots.txt refusals
    not. ``done_before``: those finished before this invocation (a resumed run). ``depth``:
    the link depth of the page handed out last (the crawl goes roughly breadth first), of
    at most ``max_depth``. ``growing``: whether the frontier may still grow: False once the
    pages being fetched are at the last depth, or every follow job has queued max_pages."""

    pages: int
    done_before: int
    depth: int
    max_depth: int
    growing: bool


@dataclass(slots=True)
class CrawlTask(FetchTask):
    """A request of a follow job; ``origin`` is the frontier row of the job URL it descends
    from, whose scope its links must stay in."""

    origin: int = 0
    asset: bool = False  # a page requisite (C16): its links are not followed


def _link_job(job: JobSpec) -> JobSpec:
    """The settings a job's links are fetched with: the job's own, but GET with no body and
    no added params, as a browser follows a link."""
    if job.method == "GET" and job.body is None and not job.params:
        return job
    headers = job.headers
    if job.body is not None:
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-type")
    return replace(job, method="GET", body=None, params=(), headers=headers)


def _agent(job: JobSpec) -> str:
    for name, value in job.headers:
        if name.lower() == "user-agent":
            return agent_token(value)
    return "*"


def _limited(read: Callable[[int], bytes], limit: int) -> Callable[[int], bytes]:
    """``read`` that gives at most ``limit`` bytes in all."""
    left = limit

    def read_some(size: int) -> bytes:
        nonlocal left
        data = read(min(size, left)) if left > 0 else b""
        left -= len(data)
        return data

    return read_some


class Crawl:
    """The crawl state of one run: frontier, robots.txt rules and scopes."""

    def __init__(
        self,
        jobs: tuple[JobSpec, ...],
        state: RunStore,
        session: aiohttp.ClientSession,
        storage: Storage,
        set_host_rate: Callable[[str, float], None],
    ) -> None:
        self._links = {job.name: _link_job(job) for job in jobs}
        self._agents = {job.name: _agent(job) for job in jobs}
        self._frontier = state.frontier(secrets.token_hex(8))
        self._frontier.forget_other_runs()
        queued, blocked = self._frontier.counts_by_job()
        self._queued, self._blocked = Counter(queued), Counter(blocked)  # per job, max_pages
        # For the live display (progress): plain ints, read from its thread.
        self._pages = sum(queued.values())  # job URLs registered + links queued, this run
        self._done_before = sum(self._frontier.by_depth().values())  # a resumed run's
        self._depth = 0
        self._max_depth = max((job.follow.depth for job in jobs if job.follow), default=0)
        self._max_pages = {job.name: job.follow.max_pages for job in jobs if job.follow}
        self._robots = Robots()
        self._state = state
        self._session = session
        self._out = storage.out
        self._spill_path = storage.temp_path
        # Crawl-delay becomes the host's rate in the pool, which crawl mode never sees.
        self._set_host_rate = set_host_rate
        self._rows: deque[Row] = deque()
        self._cursor = 0
        self._unread = True  # rows may have been queued since the last read
        self._scopes: OrderedDict[int, Scope] = OrderedDict()
        self._rated: set[str] = set()
        self._sitemaps_read: set[tuple[str, str]] = set()
        # Every page's links are read in this one thread, one page and one piece at a time:
        # lexbor holds the GIL while it parses, so more threads would not parse faster, and
        # each would hold a tree and a malloc arena of its own (asyncio's default executor
        # has up to 32 threads: with a few large pages at once, tens of MB each).
        self._parser = ThreadPoolExecutor(1, thread_name_prefix="crawler-parse")

    # --- the pool's sources ----------------------------------------------------------------

    def seeds(self, tasks: Iterator[FetchTask]) -> Iterator[FetchTask]:
        """``tasks`` with each follow job's URLs registered as seen (depth 0), in batches."""
        batch: list[FetchTask] = []
        for task in tasks:
            batch.append(task)
            if len(batch) >= _BATCH:
                yield from self._register(batch)
                batch = []
        yield from self._register(batch)

    def _register(self, batch: list[FetchTask]) -> Iterator[FetchTask]:
        seeds = [
            self._as_seed(task)
            for task in batch
            if task.job.follow is not None and task.invalid is None
        ]
        if not seeds:
            yield from batch
            return
        marks = self._frontier.register_seeds([(t.job.name, t.key, t.url_text) for t in seeds])
        by_index = iter(zip(seeds, marks, strict=True))
        for task in batch:
            if task.job.follow is None or task.invalid is not None:
                yield task
                continue
            seed, mark = next(by_index)
            if mark is None:
                log.info("%s %s: listed twice, fetched once", seed.job.name, seed.url_text)
                continue
            seed.origin, was_queued = mark
            if was_queued:
                self._queued[seed.job.name] -= 1
            else:
                self._pages += 1
            if seed.job.follow is not None:
                self._remember(seed.origin, Scope.of_seed(seed.url, seed.job.follow))
            yield seed

    @staticmethod
    def _as_seed(task: FetchTask) -> CrawlTask:
        """The task as a crawl seed; a GET is fetched under its canonical URL, so a link to
        another spelling of it is known as the same page."""
        job = task.job
        url, text, key, host = task.url, task.url_text, task.key, task.host
        if job.method == "GET" and job.body is None:
            canon = canonical(url)
            if canon is not None and canon != text:
                url, text = URL(canon, encoded=True), canon
                key = request_key(job.name, "GET", canon, None)
                host = host_key(url)
        return CrawlTask(job, task.index, url, text, key, host, depth=0, referrer=None)

    def next_task(self) -> FetchTask | None:
        """The next queued link, read from the frontier in small batches; None when there is
        none now (the pool asks again as requests finish)."""
        while True:
            if not self._rows:
                if not self._unread:
                    return None
                rows = self._frontier.read(self._cursor, _BATCH)
                self._unread = len(rows) == _BATCH
                if not rows:
                    return None
                self._cursor = rows[-1].id
                self._rows.extend(rows)
            row = self._rows.popleft()
            job = self._links.get(row.job)
            if job is None:
                continue  # a job taken out of the job file before this resume
            url = URL(row.url, encoded=True)
            self._depth = row.depth
            return CrawlTask(
                job,
                row.id,
                url,
                row.url,
                row.key,
                host_key(url),
                depth=row.depth,
                referrer=row.referrer,
                origin=row.origin or row.id,
                asset=row.asset,
            )

    # --- one request -----------------------------------------------------------------------

    async def admit(self, task: FetchTask) -> bool:
        """Whether a follow job's task may be fetched now: robots.txt allows it (else it is
        counted in the summary, not fetched and not in the manifest), after its host's
        Crawl-delay; a job URL's sitemaps are read first when asked for."""
        follow = task.job.follow
        if not isinstance(task, CrawlTask) or follow is None:
            return True
        listed = task.depth == 0 and task.referrer is None  # one of the job's own URLs
        if follow.robots or (follow.sitemaps and listed):
            origin = f"{task.url.scheme}://{task.host}"
            rules = await self._robots.rules(origin, partial(self._get_robots, task.job))
            if follow.robots and not rules.allows(task.url_text, self._agents[task.job.name]):
                self._block(task, rules)
                return False
            if follow.sitemaps and listed:
                await self._read_sitemaps(task, origin, rules)
            if follow.robots:
                await self._pace(task.host, origin, rules, task.job)
        return True

    async def discover(self, task: FetchTask, attempt: Attempt, conditional: bool) -> None:
        """Queue the links of a fetched page (of a 304's kept file, on a ``conditional``
        refetch); they are committed before the page's manifest line is written."""
        follow = task.job.follow
        if not isinstance(task, CrawlTask) or follow is None:
            return
        status = attempt.status
        if attempt.kind is None and status is not None:
            if 200 <= status < 300 and task.asset:
                if follow.assets and is_css(attempt.content_type):  # its @imports and url()s
                    await self._find_assets(task, attempt, stylesheet_requisites)
            elif 200 <= status < 300:
                await self._discover(task, follow, attempt)
                if follow.assets and is_html(attempt.content_type):
                    await self._find_assets(task, attempt, page_requisites)
            elif status == 304 and conditional:
                await self._discover_kept(task, follow)

    async def _find_assets(
        self,
        task: CrawlTask,
        attempt: Attempt,
        extract: Callable[[bytes, str], list[str]],
    ) -> None:
        """Queue what a page (or a stylesheet) needs to display (C16): at its own depth, not
        a link hop and not counted toward max_pages; on its host unless assets_scope: any."""
        follow = task.job.follow
        assert follow is not None
        page = attempt.final_url or task.url_text
        found = await requisites(attempt, page, extract, follow.assets_scope, self._parser)
        if found:
            self._queue_assets(task, found, page)

    def _queue_assets(self, task: CrawlTask, urls: list[str], page: str) -> None:
        job, follow = task.job, task.job.follow
        assert follow is not None
        assert task.depth is not None
        name, agent = job.name, self._agents[job.name]
        rows: list[NewRow] = []
        refused: dict[str, list[NewRow]] = {}
        for url in urls:
            row = (name, request_key(name, "GET", url, None), url, task.depth, page, task.origin)
            rules = self._robots.known(origin_of(URL(url, encoded=True))) if follow.robots else None
            if rules is not None and not rules.allows(url, agent):
                refused.setdefault("unavailable" if rules.blocked else "disallowed", []).append(row)
            else:
                rows.append(row)
        if rows and self._frontier.add(rows, len(rows), asset=True):
            self._unread = True
        for reason, blocked in refused.items():
            self._frontier.add(blocked, len(blocked), blocked=reason, asset=True)

    def _block(self, task: CrawlTask, rules: HostRules) -> None:
        reason = "unavailable" if rules.blocked is not None else "disallowed"
        listed = task.depth == 0 and task.referrer is None  # one of the job's own URLs
        if self._frontier.block(task.key, reason) and not task.asset:
            self._queued[task.job.name] -= 1
            self._pages -= 1
        elif listed:
            self._pages -= 1
        if reason == "disallowed" and listed:
            log.warning(
                "%s %s: disallowed by robots.txt, not fetched", task.job.name, task.url_text
            )
        else:
            log.debug("%s %s: robots.txt: %s, not fetched", task.job.name, task.url_text, reason)

    async def _pace(self, host: str, origin: str, rules: HostRules, job: JobSpec) -> None:
        delay_s = rules.delay_s(self._agents[job.name])
        if delay_s is None:
            return
        if origin not in self._rated:
            self._rated.add(origin)
            self._set_host_rate(host, 1.0 / delay_s)
        await self._robots.pace(origin, delay_s)

    async def _discover(self, task: CrawlTask, follow: FollowSpec, attempt: Attempt) -> None:
        """Queue the page's links; they are committed before the runner records the page."""
        page = attempt.final_url or task.url_text
        if page != task.url_text:
            self._see(task.job, page)
        if task.depth is None or task.depth >= follow.depth:
            return
        if not is_html(attempt.content_type):
            return
        scope = self._scope(task)
        if attempt.spill is not None:
            with attempt.spill.open("rb") as body:
                await self._read_links(task, body.read, page, scope)
        else:
            inline = len(attempt.body) <= _INLINE_BYTES
            await self._read_links(task, io.BytesIO(attempt.body).read, page, scope, inline)

    async def _discover_kept(self, task: CrawlTask, follow: FollowSpec) -> None:
        """A conditional refetch answered 304: the links are read from the file kept from
        the last fetch, so an unchanged page does not end the crawl there."""
        previous = self._state.validators(task.key)
        if previous is None or task.depth is None or task.depth >= follow.depth:
            return
        if not is_html(previous.content_type):
            return
        scope = self._scope(task)
        try:
            with (self._out / previous.path).open("rb") as body:
                await self._read_links(task, body.read, task.url_text, scope)
        except OSError as exc:
            log.warning("%s %s: cannot read the kept file: %s", task.job.name, task.url_text, exc)

    async def _read_links(
        self,
        task: CrawlTask,
        read: Callable[[int], bytes],
        page: str,
        scope: Scope,
        inline: bool = False,
    ) -> None:
        """Queue the links of the page ``read`` gives, a piece at a time (the parse thread
        reads and parses a piece, then the loop queues its links), so a large page never
        has its whole tree or all its links in memory; ``inline``: on the loop (small)."""
        links = PageLinks(_limited(read, _MAX_PARSE_BYTES), page, scope)
        loop = asyncio.get_running_loop()
        while True:
            if inline:
                batch = links.next_batch()
            else:
                batch = await loop.run_in_executor(self._parser, links.next_batch)
            if batch is None:
                return
            if batch:
                assert task.depth is not None
                self._queue(task.job, batch, task.depth + 1, task.url_text, task.origin)

    def _see(self, job: JobSpec, url: str) -> None:
        """Where a redirect led counts as fetched: a link to it later is not followed."""
        parsed = parse_url(url)
        text = canonical(parsed) if parsed is not None else None
        if text is not None:
            self._frontier.see(job.name, request_key(job.name, "GET", text, None), text)

    def _queue(
        self,
        job: JobSpec,
        found: list[tuple[str, str]],
        depth: int,
        referrer: str,
        origin: int,
    ) -> None:
        """Put new URLs in the frontier, within max_pages; those robots.txt is known to
        refuse are stored as seen and blocked (counted, never fetched)."""
        follow = job.follow
        assert follow is not None
        name, agent = job.name, self._agents[job.name]
        rows: list[NewRow] = []
        refused: dict[str, list[NewRow]] = {}
        for url, host in found:
            row = (name, request_key(name, "GET", url, None), url, depth, referrer, origin)
            rules = self._robots.known(host) if follow.robots else None
            if rules is not None and not rules.allows(url, agent):
                refused.setdefault("unavailable" if rules.blocked else "disallowed", []).append(row)
            else:
                rows.append(row)
        room = follow.max_pages - self._queued[name]
        if rows and room > 0:
            added = self._frontier.add(rows, room)
            if added:
                self._queued[name] += added
                self._pages += added
                self._unread = True
        for reason, blocked in refused.items():
            # Counted up to max_pages too, so a huge disallowed section cannot fill the disk.
            room = follow.max_pages - self._blocked[name]
            if room > 0:
                self._blocked[name] += self._frontier.add(blocked, room, blocked=reason)

    def _scope(self, task: CrawlTask) -> Scope:
        follow = task.job.follow
        assert follow is not None
        scope = self._scopes.get(task.origin)
        if scope is not None:
            self._scopes.move_to_end(task.origin)
            return scope
        seed = self._frontier.url_of(task.origin) or task.url_text
        scope = Scope.of_seed(URL(seed, encoded=True), follow)
        self._remember(task.origin, scope)
        return scope

    def _remember(self, origin: int, scope: Scope) -> None:
        self._scopes[origin] = scope
        if len(self._scopes) > _SCOPES:
            self._scopes.popitem(last=False)

    # --- robots.txt and sitemaps -----------------------------------------------------------

    def _probe(self, job: JobSpec, url: URL, max_bytes: int, max_redirects: int) -> FetchTask:
        settings = replace(
            self._links[job.name],
            conditional=False,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
        )
        return FetchTask(settings, 0, url, str(url), "", host_key(url))

    async def _get_robots(self, job: JobSpec, url: str) -> Fetched:
        probe = self._probe(job, URL(url, encoded=True), MAX_BYTES, MAX_REDIRECTS)
        attempt = await fetch.attempt(self._session, probe, None, self._spill_path)
        return Fetched(attempt.status, attempt.body, attempt.kind, attempt.message)

    async def _get_sitemap(self, job: JobSpec, url: str) -> bytes | None:
        parsed = parse_url(url)
        if parsed is None or canonical(parsed) is None:
            log.warning("%s: sitemap %s is not an http(s) URL, skipped", job.name, url)
            return None
        rules = self._robots.known(origin_of(parsed))
        if rules is not None and job.follow is not None and job.follow.robots:
            await self._pace(host_key(parsed), origin_of(parsed), rules, job)
        probe = self._probe(job, parsed, fetch.SPILL_BYTES, job.max_redirects)
        attempt = await fetch.attempt(self._session, probe, None, self._spill_path)
        status = attempt.status
        if attempt.kind is None and status is not None and 200 <= status < 300:
            return attempt.body
        why = f"{attempt.kind}: {attempt.message}" if attempt.kind else f"HTTP {status}"
        log.warning("%s: sitemap %s skipped: %s", job.name, url, why)
        return None

    async def _read_sitemaps(self, task: CrawlTask, origin: str, rules: HostRules) -> None:
        """Queue the in-scope pages of the sitemaps robots.txt lists, as depth 0: once per job
        and host. Done before the job URL itself is fetched, so that URL's manifest line
        means its sitemaps are in the frontier."""
        job, follow = task.job, task.job.follow
        assert follow is not None
        if (job.name, origin) in self._sitemaps_read:
            return
        self._sitemaps_read.add((job.name, origin))
        roots = rules.sitemaps()
        if not roots:
            return
        scope = self._scope(task)
        async for sitemap, locs in sitemaps.walk(roots, partial(self._get_sitemap, job)):
            found = await asyncio.to_thread(accept_all, locs, scope)
            self._queue(job, found, 0, sitemap, task.origin)
            if self._queued[job.name] >= follow.max_pages:
                break

    # --- progress and summary --------------------------------------------------------------

    def progress(self) -> CrawlProgress:
        """Where the crawl stands (for the live display): a few plain counters, no query;
        safe to call from another thread."""
        depth = self._depth
        full = all(self._queued[name] >= most for name, most in self._max_pages.items())
        return CrawlProgress(
            pages=self._pages,
            done_before=self._done_before,
            depth=depth,
            max_depth=self._max_depth,
            growing=depth < self._max_depth and not full,
        )

    def totals(self) -> dict[str, Any]:
        """Pages finished per depth and URLs robots.txt kept out, over the whole run."""
        blocked = self._frontier.blocked()
        return {
            "by_depth": self._frontier.by_depth(),
            "robots_blocked": {
                "disallowed": blocked.get("disallowed", 0),
                "unavailable": blocked.get("unavailable", 0),
            },
        }
