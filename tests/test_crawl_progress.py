"""The live display of a crawl (issue 14 item 11): pages fetched / pages found, how many are
queued, the depth being fetched and an ETA once the frontier stops growing; checked on the
rendered display, on the crawl's own counters after a real crawl, and with the real command
under a pseudo-terminal."""

from __future__ import annotations

import asyncio
import io
import re

from aiohttp import web

from crawler.config.jobfile import load_job_file
from crawler.crawl.crawl import CrawlProgress
from crawler.progress import FRONTIER_STILL_S, Progress
from crawler.run.runner import Run, RunOptions

from .conftest import read_manifest
from .test_progress import ANSI, Clock, _record, _run_in_pty, _text

CHILDREN = 6  # /p/n links to /p/6n+1 .. /p/6n+6
PAGES = 1 + CHILDREN + CHILDREN**2  # depth 2: 43 pages


class FakeCrawl:
    def __init__(self, **state: int | bool) -> None:
        self.state = CrawlProgress(
            **{"pages": 0, "done_before": 0, "depth": 0, "max_depth": 2, "growing": True, **state}
        )

    def progress(self) -> CrawlProgress:
        return self.state


class FakeRun:
    skipped = 0

    def __init__(self, crawl: FakeCrawl) -> None:
        self.crawl = crawl


def _page(ok: bool = True) -> object:
    record = _record(ok=ok)
    record.depth = 1
    record.referrer = "http://example.org/"
    return record


def test_crawl_display_shows_pages_queued_depth_and_no_eta_while_growing():
    clock = Clock()
    crawl = FakeCrawl(pages=100, depth=1)
    progress = Progress(io.StringIO(), clock=clock)
    progress._run = FakeRun(crawl)
    text = _text(progress)
    assert "0/100 pages  0%  100 queued  depth 1/2  (finding more)" in text
    clock.now += 2
    for _ in range(20):
        progress.update(_page())
    progress.update(_record())  # a plain job's request in the same run
    text = _text(progress)
    assert "20/100 pages  20%  80 queued  depth 1/2" in text
    assert "ETA" not in text and "(finding more)" in text
    assert "+ 1 other requests" in text
    assert "10.5 req/s" in text
    # The frontier grows: still no ETA.
    crawl.state = CrawlProgress(150, 0, 1, 2, True)
    clock.now += FRONTIER_STILL_S - 1
    assert "20/150 pages" in _text(progress) and "ETA" not in _text(progress)


def test_crawl_eta_once_the_frontier_stops_growing():
    clock = Clock()
    crawl = FakeCrawl(pages=100, depth=1)
    progress = Progress(io.StringIO(), clock=clock)
    progress._run = FakeRun(crawl)
    _text(progress)  # the frontier is seen at 100 pages
    clock.now += FRONTIER_STILL_S
    for _ in range(50):
        progress.update(_page())
    text = _text(progress)
    # 50 pages in 5 s: 10 a second, 50 to go.
    assert "50/100 pages  50%  50 queued  depth 1/2  ETA 0:05" in text
    # At the last depth the frontier cannot grow: the ETA shows at once.
    progress = Progress(io.StringIO(), clock=clock)
    progress._run = FakeRun(FakeCrawl(pages=40, depth=2, growing=False))
    clock.now += 2
    for _ in range(10):
        progress.update(_page())
    assert "10/40 pages  25%  30 queued  depth 2/2  ETA 0:06" in _text(progress)


def test_crawl_display_of_a_resumed_crawl_and_before_any_page():
    progress = Progress(io.StringIO(), clock=Clock())
    progress._run = FakeRun(FakeCrawl(pages=0))
    assert "0/0 pages  0%" in _text(progress)  # a pulsing bar, no division by zero
    progress._run = FakeRun(FakeCrawl(pages=30, done_before=12))
    progress.update(_page())
    text = _text(progress)
    assert "13/30 pages" in text and "(12 done before this resume)" in text


def test_failed_pages_count_as_fetched():
    progress = Progress(io.StringIO(), clock=Clock())
    progress._run = FakeRun(FakeCrawl(pages=3))
    progress.update(_page())
    progress.update(_page(ok=False))
    text = _text(progress)
    assert "2/3 pages" in text and "1 failed: http 1" in text


# --- a real crawl --------------------------------------------------------------------------


def tree_site(delay: float = 0.0) -> web.Application:
    """/p/n links to its children /p/6n+1 .. /p/6n+6 (twice, with fragments), to itself and
    to another host; no robots.txt (404: everything allowed)."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if delay:
            await asyncio.sleep(delay)
        kids = range(CHILDREN * n + 1, CHILDREN * n + CHILDREN + 1)
        links = "".join(f'<a href="/p/{k}">{k}</a><a href="{k}#x">again</a>' for k in kids)
        body = f'<html><body><a href="/p/{n}">me</a><a href="http://other.test/">x</a>{links}'
        return web.Response(text=body + "</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{n}", page)
    return app


def crawl_job(base: str, depth: int = 2, extra: str = "") -> str:
    return f"""
        version: 1
        concurrency: 4
        per_host: 2
        defaults: {{retries: 0}}
        jobs:
          - name: tree
            url: {base}/p/0
            follow: {{depth: {depth}}}
{extra}"""


async def test_crawl_counters_agree_with_the_manifest(aiohttp_server, write_job, tmp_path):
    server = await aiohttp_server(tree_site())
    base = str(server.make_url("")).rstrip("/")
    job = load_job_file(write_job(crawl_job(base)))
    progress = Progress(io.StringIO(), clock=Clock())
    run = Run(job, RunOptions(), on_finished=progress.update)
    progress._run = run
    summary = await run.run()
    assert summary["requests"] == PAGES
    state = run.crawl.progress()
    assert state == CrawlProgress(PAGES, 0, 2, 2, False)
    assert progress.pages == len(read_manifest(tmp_path / "out" / "job")) == PAGES
    assert f"{PAGES}/{PAGES} pages  100%  0 queued  depth 2/2" in _text(progress)


async def test_crawl_progress_at_a_terminal(aiohttp_server, write_job, tmp_path):
    """The real command under a pseudo-terminal: the pages found grow with the depth, the
    depth counts up to 2, an ETA appears at the last depth, and the last frame has every
    page; then the summary and how to open the report."""
    server = await aiohttp_server(tree_site(delay=0.1))
    base = str(server.make_url("")).rstrip("/")
    job = write_job(crawl_job(base))
    code, raw = await _run_in_pty("run", str(job), cwd=tmp_path, timeout=60)
    assert code == 0, raw.decode(errors="replace")
    plain = ANSI.sub(b"", raw).decode()
    frames = re.findall(r"(\d+)/(\d+) pages +\d+% +(\d+) queued +depth (\d)/2", plain)
    assert len(set(frames)) >= 4, plain
    fetched = [int(f[0]) for f in frames]
    found = [int(f[1]) for f in frames]
    depths = [int(f[3]) for f in frames]
    assert fetched == sorted(fetched) and found == sorted(found) and depths == sorted(depths)
    assert all(int(q) == int(t) - int(d) for d, t, q, _ in frames)
    assert frames[-1][:2] == (str(PAGES), str(PAGES))
    assert found[0] < PAGES  # seen growing
    # The depth counts up to the last one (a frame at depth 1 may be missed on a busy machine:
    # the display redraws a few times a second).
    assert depths[-1] == 2
    assert re.search(r"depth 2/2  ETA \d+:\d\d", plain), plain
    *_, summary, report = plain.rstrip().splitlines()
    assert summary.startswith("run ") and f"{PAGES} requests" in summary
    assert report == f"report: crawler report {tmp_path / 'out' / 'job'}"
