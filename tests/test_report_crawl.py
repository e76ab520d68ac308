"""The report of a crawl (issue 14 item 12): pages per depth, robots.txt refusals, the page
that links to each failure, 304-unchanged, per-job totals and the change from the previous
run of the same output folder. Two real runs of the installed command crawl a generated local
site; every number the report shows is checked against the manifest (and the saved summary
for robots.txt, which keeps refused URLs out of the manifest)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler.report.summary import human_bytes

from .conftest import crawler_cli, read_manifest
from .test_report import CHROMIUM

CHILDREN = 5  # /p/n links to /p/5n+1 .. /p/5n+5; depth 2: 31 pages
MISSING_EVERY = 3  # /p/n with n % 3 == 0 links to /missing/n (404), until the site is fixed
PRIVATE_EVERY = 2  # /p/n with n % 2 == 0 links to /private/n, which robots.txt disallows


class Site:
    def __init__(self) -> None:
        self.fixed = False  # the second run: the broken links are gone

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            etag = f'"p{n}-{self.fixed}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            links = [f"/p/{k}" for k in range(CHILDREN * n + 1, CHILDREN * n + CHILDREN + 1)]
            if n % MISSING_EVERY == 0 and not self.fixed:
                links.append(f"/missing/{n}")
            if n % PRIVATE_EVERY == 0:
                links.append(f"/private/{n}")
            body = "".join(f'<a href="{link}">{link}</a> ' for link in links)
            return web.Response(
                text=f"<html><body>{body}</body></html>",
                content_type="text/html",
                headers={"ETag": etag},
            )

        async def missing(request: web.Request) -> web.Response:
            return web.Response(status=404, text="no such page")

        async def robots(request: web.Request) -> web.Response:
            return web.Response(text="User-agent: *\nDisallow: /private/\n")

        async def plain(request: web.Request) -> web.Response:
            return web.json_response({"n": request.match_info["n"]})

        app = web.Application()
        app.router.add_get("/p/{n}", page)
        app.router.add_get("/missing/{n}", missing)
        app.router.add_get("/robots.txt", robots)
        app.router.add_get("/plain/{n}", plain)
        return app


class Tables(HTMLParser):
    """Every table of the page under the heading (h2 or h3) last seen before it: a list of
    rows, each a list of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.heading = ""
        self._in_heading = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("h2", "h3"):
            self._in_heading, self.heading = True, ""
        elif tag == "table":
            self.tables[self.heading] = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3"):
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self.heading].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.heading += data
        if self._cell is not None:
            self._cell.append(data)


def tables_of(page: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def table(tables: dict[str, list[list[str]]], start: str) -> list[list[str]]:
    [(_, rows)] = [(k, v) for k, v in tables.items() if k.startswith(start)]
    return rows[1:]  # without the header row


def totals(records: list[dict[str, Any]]) -> list[str]:
    """The cells the report shows for a group of manifest lines: requests, ok, failed,
    unchanged (304), retries, bytes."""
    ok = [r for r in records if r["ok"]]
    return [
        f"{len(records):,}",
        f"{len(ok):,}",
        f"{len(records) - len(ok):,}",
        f"{sum(1 for r in ok if r['status'] == 304):,}",
        f"{sum(r['attempts'] - 1 for r in records if r['attempts']):,}",
        human_bytes(sum(r["bytes"] or 0 for r in records)),
    ]


def job_file(base: str) -> str:
    return f"""
version: 1
concurrency: 4
defaults: {{retries: 0}}
jobs:
  - name: docs
    url: {base}/p/0
    conditional: true
    follow: {{depth: 2}}
  - name: api
    urls: ["{base}/plain/1", "{base}/plain/2", "{base}/missing/api"]
    save: json
"""


async def run_and_report(job: Path, cwd: Path, expect: int) -> tuple[str, dict[str, Any]]:
    done = await crawler_cli("run", str(job), cwd=cwd)
    assert done.code == expect, done.stderr
    assert "report:" not in done.stderr  # no terminal: warnings and the summary only (C13)
    out = cwd / "out" / "job"
    report = await crawler_cli("report", str(out))
    assert report.code == 0, report.stderr
    last = json.loads((out / ".crawler" / "last.json").read_text())
    return Path(report.stdout.strip()).read_text("utf-8"), last


async def test_report_of_two_crawls_against_the_manifest(aiohttp_server, write_job, tmp_path):
    site = Site()
    server = await aiohttp_server(site.app())
    base = str(server.make_url("")).rstrip("/")
    job = write_job(job_file(base))
    out = tmp_path / "out" / "job"

    # --- the first run: broken links, robots.txt refusals, no previous run ----------------
    page, last = await run_and_report(job, tmp_path, expect=1)
    records = [r for r in read_manifest(out) if r["run"] == last["run"]]
    docs = [r for r in records if r["job"] == "docs"]
    tables = tables_of(page)

    # Pages per depth: each depth's row is what the manifest's lines of that depth say.
    by_depth: dict[int, list[dict[str, Any]]] = {}
    for record in docs:
        by_depth.setdefault(record["depth"], []).append(record)
    assert sorted(by_depth) == [0, 1, 2]
    assert len(by_depth[1]) == CHILDREN + 1  # the children and /missing/0
    rows = table(tables, "Pages per depth")
    assert rows == [[str(d), *totals(by_depth[d])] for d in sorted(by_depth)]
    assert f"Pages per depth ({len(docs):,} pages)" in page
    assert last["by_depth"] == {str(d): len(group) for d, group in by_depth.items()}

    # robots.txt: the refused URLs are in the summary, not in the manifest.
    parents = [r for r in docs if r["url"].startswith(f"{base}/p/") and r["depth"] < 2]
    private = sum(1 for r in parents if int(r["url"].rsplit("/", 1)[1]) % PRIVATE_EVERY == 0)
    assert last["robots_blocked"] == {"disallowed": private, "unavailable": 0}
    assert not any("/private/" in r["url"] for r in records)
    robots = table(tables, "robots.txt")
    assert robots[0][1] == f"{private:,}" and robots[1][1] == "0"
    assert f"robots.txt ({private:,} URLs kept out)" in page
    assert f"<b>{private:,}</b><span>kept out by robots.txt</span>" in page

    # Failures: each 404 with the page that links to it, as the manifest has it.
    failed = {r["url"]: r for r in records if not r["ok"]}
    assert len(failed) == 1 + sum(
        1 for r in parents if int(r["url"].rsplit("/", 1)[1]) % MISSING_EVERY == 0
    )
    each = table(tables, "Each failure")
    assert {row[5]: row[6] for row in each} == {
        url: r.get("referrer") or "-" for url, r in failed.items()
    }
    for url, linked_from in ((row[5], row[6]) for row in each):
        n = url.rsplit("/", 1)[1]
        assert linked_from == ("-" if n == "api" else f"{base}/p/{n}")

    # Per-job totals.
    jobs = table(tables, "Jobs")
    assert jobs == [
        [name, *totals([r for r in records if r["job"] == name])] for name in ("api", "docs")
    ]
    assert "Change from the previous run" not in page  # there is none
    assert "unchanged (304)</span>" not in page  # nothing unchanged in a first run

    # --- the second run: the site unchanged, every page answers 304 ----------------------
    first = last
    page, last = await run_and_report(job, tmp_path, expect=1)
    assert last["run"] != first["run"]
    records = [r for r in read_manifest(out) if r["run"] == last["run"]]
    tables = tables_of(page)
    unchanged = sum(1 for r in records if r["status"] == 304)
    assert unchanged == sum(1 for r in records if r["job"] == "docs" and "/p/" in r["url"]) > 0
    assert f"<b>{unchanged:,}</b><span>unchanged (304)</span>" in page
    assert f"{unchanged:,} of the ok requests were 304 Not Modified" in page
    jobs = table(tables, "Jobs")
    assert jobs == [
        [name, *totals([r for r in records if r["job"] == name])] for name in ("api", "docs")
    ]
    assert jobs[1][4] == f"{unchanged:,}"
    # Links of unchanged pages are read from the kept files: the same crawl as before.
    assert Counter(r["depth"] for r in records if r["job"] == "docs") == Counter(
        int(d) for d, n in first["by_depth"].items() for _ in range(n)
    )


async def test_change_from_the_previous_run(aiohttp_server, write_job, tmp_path):
    site = Site()
    server = await aiohttp_server(site.app())
    base = str(server.make_url("")).rstrip("/")
    job = write_job(job_file(base))
    out = tmp_path / "out" / "job"
    _, first = await run_and_report(job, tmp_path, expect=1)
    site.fixed = True  # new ETags (every page changed) and no broken links
    page, last = await run_and_report(job, tmp_path, expect=1)
    records = [r for r in read_manifest(out) if r["run"] == last["run"]]
    before = [r for r in read_manifest(out) if r["run"] == first["run"]]
    assert len(records) < len(before)
    rows = {row[0]: row[1:] for row in table(tables_of(page), "Change from the previous run")}
    failed_now = sum(1 for r in records if not r["ok"])
    bytes_now = sum(r["bytes"] or 0 for r in records)
    assert rows["requests"][:2] == [f"{first['requests']:,}", f"{len(records):,}"]
    assert first["requests"] == len(before)
    fewer = first["requests"] - len(records)
    assert rows["requests"][2] == f"\u2212{fewer:,} (\u2212{fewer / len(before):.0%})"
    assert first["failed"] == sum(1 for r in before if not r["ok"]) > failed_now == 1
    assert rows["failed"][:2] == [f"{first['failed']:,}", "1"]
    assert rows["failed"][2].startswith("\u2212")
    assert rows["bytes"][:2] == [human_bytes(first["bytes"]), human_bytes(bytes_now)]
    assert f"previous run {first['run']}" in page
    # The first run's report (asked for by id) has no previous run to compare with.
    again = await crawler_cli("report", str(out), "--run", first["run"])
    assert "Change from the previous run" not in Path(again.stdout.strip()).read_text("utf-8")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
async def test_crawl_report_renders_in_headless_chromium(aiohttp_server, write_job, tmp_path):
    site = Site()
    server = await aiohttp_server(site.app())
    job = write_job(job_file(str(server.make_url("")).rstrip("/")))
    await run_and_report(job, tmp_path, expect=1)
    site.fixed = True
    await run_and_report(job, tmp_path, expect=1)
    page = tmp_path / "report.html"
    done = await crawler_cli("report", str(tmp_path / "out" / "job"), "-o", str(page))
    assert done.code == 0, done.stderr
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--enable-logging=stderr",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        dom, log = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, log.decode(errors="replace")
    assert [line for line in log.decode(errors="replace").splitlines() if "CONSOLE" in line] == []
    rendered = dom.decode()
    charts = rendered.split("<svg")[1:]
    assert len(charts) == 5  # the four of every report and the pages per depth
    assert all(len(re.findall(r"<rect\b", chart)) >= 2 for chart in charts)
    for heading in ("Change from the previous run", "Pages per depth", "robots.txt", "Jobs"):
        assert heading in rendered
