"""Crawl mode (C14) against a generated local site: links found and followed within scope,
every canonical URL fetched once (by the server's own request log), depth and max_pages,
include and exclude, robots.txt (rules, Crawl-delay, 4xx, 5xx, timeout), sitemaps, and a
crawl killed with SIGKILL and resumed. Pure parts (canonical URLs, scope, sitemaps, robots
rules) are checked table by table."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from yarl import URL

from crawler.config.spec import FollowSpec
from crawler.crawl.links import Scope, canonical, page_links
from crawler.crawl.robots import Fetched, agent_token, rules_from
from crawler.crawl.sitemaps import gunzip, parse

from .conftest import CRAWLER_BIN, read_manifest, run_job

N_PAGES = 2000
PRIVATE_EVERY = 50  # /p/n with n % 50 == 0 links to /private/n, which robots.txt disallows
DATA_EVERY = 100  # /p/n with n % 100 == 0 links to a JSON file and a text/plain file
ORPHANS = 30  # /orphan/k: linked from nowhere, listed only by the sitemaps
UA = "testbot/2.0 (+https://example.org/bot)"


# --- the site ------------------------------------------------------------------------------


def tree_links(n: int) -> list[str]:
    """The canonical paths /p/n links to that are pages of the site (the model of the site)."""
    out = [f"/p/{c}" for c in (2 * n + 1, 2 * n + 2) if c < N_PAGES]
    if n:
        out.append(f"/p/{(n - 1) // 2}")
    if n % DATA_EVERY == 0:
        out += [f"/data/{n}.json", f"/text/{n}.txt"]
    out += {1: ["/big"], 3: ["/xhtml"], 4: ["/base/"]}.get(n, [])
    return out


def model_links(path: str) -> list[str]:
    if path.startswith("/p/"):
        return tree_links(int(path[3:]))
    return {
        "/big": [f"/p/{k}" for k in range(N_PAGES)],
        "/xhtml": ["/xhtml-child"],
        "/base/": ["/based/target"],
    }.get(path, [])


def bfs(seeds: list[str], depth: int, keep=lambda path: True) -> dict[str, int]:
    """Each page reachable from ``seeds`` within ``depth`` link hops, with its distance."""
    found = {seed: 0 for seed in seeds}
    queue = deque(seeds)
    while queue:
        path = queue.popleft()
        if found[path] >= depth:
            continue
        for link in model_links(path):
            if link not in found and keep(link):
                found[link] = found[path] + 1
                queue.append(link)
    return found


def page_html(n: int, origin: str) -> str:
    """/p/n: its tree links, each child under several spellings and element kinds, plus links
    that must not be followed."""
    kinds = [
        '<a href="{}">a</a>',
        '<area href="{}">',
        '<link rel="next" href="{}">',
        '<link rel="Alternate" href="{}">',
        '<iframe src="{}"></iframe>',
        '<frame src="{}">',
    ]
    parts = [f"<!doctype html><html><head><title>page {n}</title>"]
    parts.append('<link rel="stylesheet" href="/style.css"><link rel="icon" href="/never/icon">')
    parts.append("</head><body>")
    host = origin.split("//")[1]
    for i, child in enumerate(c for c in (2 * n + 1, 2 * n + 2) if c < N_PAGES):
        spellings = [
            f"/p/{child}",
            f"/p/{child}#part-{i}",
            f"./{child}",
            f"../p/{child}",
            f"/p/./x/../{child}",
            "/p/" + "".join(f"%{ord(c):02x}" for c in str(child)),  # %31%32 for 12
            f"/%70/{child}",  # %70 is "p"
            f"HTTP://{host}/p/{child}",
            f"{origin}/p/{child}#top",
            f"  /p/{child}\n",
        ]
        for j, spelling in enumerate(spellings):
            parts.append(kinds[(n + i + j) % len(kinds)].format(spelling))
    if n:
        parts.append(f'<a href="../p/{(n - 1) // 2}#up">parent</a>')
    parts += [
        f'<a href="#self">self</a><a href="/p/{n}">self</a>',
        '<a href="mailto:someone@example.org">mail</a>',
        '<a href="javascript:void(0)">js</a>',
        '<a href="tel:+1555">tel</a>',
        '<a href="data:text/html,hi">data</a>',
        f'<a href="ftp://{host}/p/1">ftp</a>',
        f'<a href="http://localhost:{host.split(":")[1]}/p/{n}">another host</a>',
        '<a href="http://[::1">broken</a>',
        "<a>no href</a>",
    ]
    if n % PRIVATE_EVERY == 0:
        parts.append(f'<a href="/private/{n}">private</a>')
    if n % DATA_EVERY == 0:
        parts.append(f'<a href="/data/{n}.json">data</a><a href="/text/{n}.txt">text</a>')
    extra = {1: "/big", 3: "/xhtml", 4: "/base/"}.get(n)
    if extra:
        parts.append(f'<a href="{extra}">extra</a>')
    return "".join(parts) + "</body></html>"


@dataclass
class Log:
    hits: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    times: list[tuple[float, str]] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)
    delay: float = 0.0  # per /p/ page


def robots_txt(origin: str) -> str:
    return (
        "User-agent: otherbot\nDisallow: /\n\n"
        "User-agent: testbot\nDisallow: /private/\nAllow: /\n\n"
        f"Sitemap: {origin}/sitemap_index.xml\n"
    )


def sitemap(urls: list[str]) -> bytes:
    body = "".join(f"<url><loc>{u}</loc><lastmod>2024-01-01</lastmod></url>" for u in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'
    ).encode()


def crawl_app(log: Log) -> web.Application:
    @web.middleware
    async def record(request, handler):
        log.hits[request.raw_path] += 1
        log.hosts[request.host] += 1
        log.times.append((time.monotonic(), request.raw_path))
        log.agents.add(request.headers.get("User-Agent", ""))
        return await handler(request)

    def origin(request: web.Request) -> str:
        return f"http://{request.host}"

    def html(text: str, content_type: str = "text/html") -> web.Response:
        return web.Response(text=text, content_type=content_type)

    async def page(request):
        n = int(request.match_info["n"])
        if not 0 <= n < N_PAGES or request.match_info["n"] != str(n):
            raise web.HTTPNotFound()
        if log.delay:
            await asyncio.sleep(log.delay)
        return html(page_html(n, origin(request)))

    async def big(request):
        links = "".join(f'<p>filler text {k}</p><a href="/p/{k}#b">{k}</a>' for k in range(N_PAGES))
        return html(f"<html><body>{links}</body></html>")

    async def robots(request):
        return web.Response(text=robots_txt(origin(request)))

    async def index(request):
        base = origin(request)
        body = (
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{base}/sitemap1.xml</loc></sitemap>"
            f"<sitemap><loc>{base}/sitemap2.xml.gz</loc></sitemap></sitemapindex>"
        )
        return web.Response(text=body, content_type="application/xml")

    async def sitemap1(request):
        base = origin(request)
        port = request.host.split(":")[1]
        urls = [f"{base}/orphan/{k}" for k in range(0, ORPHANS, 2)]
        urls += [f"{base}/p/5#dup", f"{base}/private/sitemap", f"http://localhost:{port}/x"]
        return web.Response(body=sitemap(urls), content_type="application/xml")

    async def sitemap2(request):
        urls = [f"{origin(request)}/orphan/{k}" for k in range(1, ORPHANS, 2)]
        return web.Response(body=gzip.compress(sitemap(urls)), content_type="application/gzip")

    async def leaf(request):
        return html("<html><body><a href='/p/0'>home</a></body></html>")

    async def data(request):
        return web.json_response({"html": "<a href='/never/json'>x</a>"})

    async def text(request):
        return web.Response(text="<a href='/never/text'>x</a>", content_type="text/plain")

    async def xhtml(request):
        return html(
            '<html><body><a href="/xhtml-child">c</a></body></html>', "application/xhtml+xml"
        )

    async def base(request):
        return html(
            '<html><head><base href="/based/"></head><body><a href="target">t</a></body></html>'
        )

    app = web.Application(middlewares=[record])
    app.router.add_get("/p/{n}", page)
    app.router.add_get("/big", big)
    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/sitemap_index.xml", index)
    app.router.add_get("/sitemap1.xml", sitemap1)
    app.router.add_get("/sitemap2.xml.gz", sitemap2)
    app.router.add_get("/orphan/{k}", leaf)
    app.router.add_get("/xhtml-child", leaf)
    app.router.add_get("/based/target", leaf)
    app.router.add_get("/data/{n}", data)
    app.router.add_get("/text/{n}", text)
    app.router.add_get("/xhtml", xhtml)
    app.router.add_get("/base/", base)
    return app


async def start_site(aiohttp_server) -> tuple[str, Log]:
    log = Log()
    server = await aiohttp_server(crawl_app(log))
    return str(server.make_url("")).rstrip("/"), log


def crawl_job(base: str, follow: str, seeds: str = "/p/0", extra: str = "") -> str:
    urls = "".join(f'      - "{base}{s}"\n' for s in seeds.split())
    return (
        "version: 1\nconcurrency: 16\nper_host: 16\n"
        f'defaults: {{headers: {{User-Agent: "{UA}"}}, retries: 0}}\n'
        f"jobs:\n  - name: site\n    urls:\n{urls}    follow: {follow}\n{extra}"
    )


def fetched_paths(records: list[dict], base: str) -> Counter[str]:
    return Counter(URL(r["url"]).raw_path for r in records if r["url"].startswith(base))


EVERYTHING = {
    *bfs(["/p/0"], 1000),
    *(f"/orphan/{k}" for k in range(ORPHANS)),
}


# --- end to end ----------------------------------------------------------------------------


async def test_crawl_fetches_every_in_scope_allowed_page_once(aiohttp_server, write_job, tmp_path):
    base, log = await start_site(aiohttp_server)
    job = write_job(crawl_job(base, "{depth: 1000, max_pages: 100000, sitemaps: true}"))
    out = tmp_path / "out"
    summary = await run_job(job, out)
    assert summary["exit_code"] == 0

    records = read_manifest(out)
    assert all(r["ok"] for r in records)
    paths = fetched_paths(records, base)
    assert set(paths) == EVERYTHING
    assert max(paths.values()) == 1
    # The server's own log: each page once, robots.txt and each sitemap once, nothing else.
    pages = {p: n for p, n in log.hits.items() if p in EVERYTHING}
    assert pages == dict.fromkeys(EVERYTHING, 1)
    others = {p: n for p, n in log.hits.items() if p not in EVERYTHING}
    assert others == {
        "/robots.txt": 1,
        "/sitemap_index.xml": 1,
        "/sitemap1.xml": 1,
        "/sitemap2.xml.gz": 1,
    }
    assert set(log.hosts) == {URL(base).raw_authority}  # never the same site as "localhost"
    assert log.agents == {UA}

    # Depth and referrer in the manifest; seeds and sitemap pages are depth 0.
    by_url = {URL(r["url"]).raw_path: r for r in records}
    assert by_url["/p/0"]["depth"] == 0 and by_url["/p/0"]["referrer"] is None
    assert by_url["/orphan/3"]["depth"] == 0
    assert by_url["/orphan/3"]["referrer"] == f"{base}/sitemap2.xml.gz"
    assert by_url["/based/target"]["referrer"] == f"{base}/base/"
    assert by_url["/based/target"]["depth"] == by_url["/base/"]["depth"] + 1
    for record in records:
        if record["referrer"] and "sitemap" not in record["referrer"]:
            assert record["depth"] == by_url[URL(record["referrer"]).raw_path]["depth"] + 1

    private = {f"/private/{n}" for n in range(0, N_PAGES, PRIVATE_EVERY)} | {"/private/sitemap"}
    assert summary["robots_blocked"] == {"disallowed": len(private), "unavailable": 0}
    assert sum(summary["by_depth"].values()) == len(EVERYTHING) == summary["requests"]
    # The job URL, the orphans and /p/5, which sitemap1.xml lists before any link leads there.
    assert summary["by_depth"]["0"] == 1 + ORPHANS + 1
    assert by_url["/p/5"]["depth"] == 0 and by_url["/p/5"]["referrer"] == f"{base}/sitemap1.xml"
    saved = json.loads((out / ".crawler" / "last.json").read_text())
    assert saved["by_depth"] == summary["by_depth"]


async def test_depth_limit_and_depths_in_manifest(aiohttp_server, write_job, tmp_path):
    base, log = await start_site(aiohttp_server)
    job = write_job(crawl_job(base, "{depth: 2}"))
    summary = await run_job(job, tmp_path / "out")
    assert summary["exit_code"] == 0
    records = read_manifest(tmp_path / "out")
    expected = bfs(["/p/0"], 2)
    got = {URL(r["url"]).raw_path: r["depth"] for r in records}
    assert got == expected
    assert "/big" in got and "/p/7" not in got
    by_depth = Counter(str(d) for d in expected.values())
    assert summary["by_depth"] == dict(sorted(by_depth.items()))
    assert all(n == 1 for p, n in log.hits.items() if p != "/robots.txt")


async def test_depth_0_fetches_only_the_job_urls(aiohttp_server, write_job, tmp_path):
    base, log = await start_site(aiohttp_server)
    job = write_job(crawl_job(base, "{depth: 0}", seeds="/p/0 /p/9#x /p/9"))
    summary = await run_job(job, tmp_path / "out")
    records = read_manifest(tmp_path / "out")
    # /p/9#x and /p/9 are one page: fetched once, under its canonical URL.
    assert sorted(r["url"] for r in records) == [f"{base}/p/0", f"{base}/p/9"]
    assert summary["by_depth"] == {"0": 2}
    assert log.hits["/p/9"] == 1


async def test_max_pages_counts_pages_fetched_through_links(aiohttp_server, write_job, tmp_path):
    base, _ = await start_site(aiohttp_server)
    job = write_job(crawl_job(base, "{depth: 1000, max_pages: 50}"))
    summary = await run_job(job, tmp_path / "out")
    records = read_manifest(tmp_path / "out")
    assert len(records) == 1 + 50
    assert len({r["url"] for r in records}) == 51
    assert summary["requests"] == 51


async def test_include_and_exclude(aiohttp_server, write_job, tmp_path):
    base, log = await start_site(aiohttp_server)
    job = write_job(
        crawl_job(base, """{depth: 1000, include: ["/p/"], exclude: ['/p/\\d*7$', "/p/12$"]}""")
    )
    await run_job(job, tmp_path / "out")
    records = read_manifest(tmp_path / "out")

    def keep(path: str) -> bool:
        return path.startswith("/p/") and not path.endswith("7") and path != "/p/12"

    expected = bfs(["/p/0"], 1000, keep)
    assert fetched_paths(records, base) == Counter(set(expected))
    assert log.hits["/p/7"] == 0 and log.hits["/big"] == 0 and log.hits["/p/25"] == 0


async def test_prefix_scope(aiohttp_server, write_job, tmp_path):
    base, _ = await start_site(aiohttp_server)
    job = write_job(crawl_job(base, "{depth: 1000, scope: prefix}", seeds="/base/"))
    await run_job(job, tmp_path / "out")
    # /base/ links to /based/target: outside the prefix /base/, so not followed.
    assert [URL(r["url"]).raw_path for r in read_manifest(tmp_path / "out")] == ["/base/"]


async def test_follow_job_beside_a_plain_job(aiohttp_server, write_job, tmp_path):
    base, log = await start_site(aiohttp_server)
    job = write_job(
        crawl_job(
            base,
            "{depth: 1}",
            extra=f"  - name: plain\n    urls: [{base}/p/1, {base}/p/2]\n",
        )
    )
    summary = await run_job(job, tmp_path / "out")
    records = read_manifest(tmp_path / "out")
    plain = [r for r in records if r["job"] == "plain"]
    site = [r for r in records if r["job"] == "site"]
    assert len(plain) == 2 and all("depth" not in r and "referrer" not in r for r in plain)
    assert sorted(URL(r["url"]).raw_path for r in site) == sorted(bfs(["/p/0"], 1))
    assert summary["by_depth"] == {"0": 1, "1": len(bfs(["/p/0"], 1)) - 1}
    assert log.hits["/p/1"] == 2  # once per job: the jobs are separate requests


async def test_conditional_recrawl_follows_links_of_unchanged_pages(
    aiohttp_server, write_job, tmp_path
):
    statuses: list[tuple[str, int]] = []

    async def page(request):
        n = int(request.match_info["n"])
        if request.headers.get("If-None-Match") == '"v1"':
            statuses.append((request.path, 304))
            return web.Response(status=304, headers={"ETag": '"v1"'})
        statuses.append((request.path, 200))
        links = "".join(f'<a href="/c/{k}">{k}</a>' for k in range(1, 4)) if n == 0 else ""
        return web.Response(
            text=f"<html><body>{links}</body></html>",
            content_type="text/html",
            headers={"ETag": '"v1"'},
        )

    app = web.Application()
    app.router.add_get("/c/{n}", page)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    job = write_job(
        "version: 1\njobs:\n  - name: c\n"
        f"    url: {base}/c/0\n    conditional: true\n    follow: {{depth: 1, robots: false}}\n"
    )
    for _ in range(2):
        summary = await run_job(job, tmp_path / "out")
        assert summary["exit_code"] == 0
    assert sorted(statuses) == sorted(
        [(f"/c/{n}", 200) for n in range(4)] + [(f"/c/{n}", 304) for n in range(4)]
    )
    last = [r for r in read_manifest(tmp_path / "out") if r["run"] == summary["run"]]
    assert sorted(r["status"] for r in last) == [304] * 4


# --- robots.txt ----------------------------------------------------------------------------


def small_app(robots_handler, hits: list[tuple[float, str]]) -> web.Application:
    """/c/0 links to /c/1../c/11; /robots.txt as the test says."""

    @web.middleware
    async def record(request, handler):
        hits.append((time.monotonic(), request.path))
        return await handler(request)

    async def page(request):
        n = int(request.match_info["n"])
        links = "".join(f'<a href="/c/{k}">{k}</a>' for k in range(1, 12)) if n == 0 else ""
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    app = web.Application(middlewares=[record])
    app.router.add_get("/c/{n}", page)
    app.router.add_get("/robots.txt", robots_handler)
    return app


def small_job(base: str, timeout: str = "{total: 5}") -> str:
    return (
        "version: 1\nconcurrency: 16\nper_host: 8\n"
        f"defaults: {{retries: 0, timeout: {timeout}}}\n"
        f"jobs:\n  - name: c\n    url: {base}/c/0\n    follow: {{depth: 1}}\n"
    )


async def test_crawl_delay_spaces_requests_to_the_host(aiohttp_server, write_job, tmp_path):
    async def robots(request):
        return web.Response(text="User-agent: *\nCrawl-delay: 0.05\nDisallow: /c/11\n")

    hits: list[tuple[float, str]] = []
    server = await aiohttp_server(small_app(robots, hits))
    base = str(server.make_url("")).rstrip("/")
    summary = await run_job(write_job(small_job(base)), tmp_path / "out")
    assert summary["exit_code"] == 0
    assert sorted(p for _, p in hits) == sorted(["/robots.txt"] + [f"/c/{k}" for k in range(11)])
    # Crawl-delay 0.05 s: request starts 50 ms apart, robots.txt included (timed at the
    # server, so each gap may look a little shorter than it was).
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(hits)]
    assert min(gaps) >= 0.03, gaps
    assert hits[-1][0] - hits[0][0] >= 11 * 0.05 - 0.01
    assert summary["robots_blocked"] == {"disallowed": 1, "unavailable": 0}


@pytest.mark.parametrize(
    ("behaviour", "fetched", "unavailable"),
    [("404", 12, 0), ("410", 12, 0), ("500", 0, 1), ("503", 0, 1), ("timeout", 0, 1)],
)
async def test_robots_4xx_allows_5xx_and_timeout_block(
    aiohttp_server, write_job, tmp_path, behaviour, fetched, unavailable
):
    async def robots(request):
        if behaviour == "timeout":
            await asyncio.sleep(3)
            return web.Response(text="")
        return web.Response(status=int(behaviour), text="User-agent: *\nDisallow: /\n")

    hits: list[tuple[float, str]] = []
    server = await aiohttp_server(small_app(robots, hits))
    base = str(server.make_url("")).rstrip("/")
    summary = await run_job(write_job(small_job(base, "{total: 0.5}")), tmp_path / "out")
    records = read_manifest(tmp_path / "out")
    assert len(records) == fetched
    assert sorted(p for _, p in hits if p != "/robots.txt") == sorted(
        r["url"][len(base) :] for r in records
    )
    assert summary["robots_blocked"] == {"disallowed": 0, "unavailable": unavailable}
    assert summary["exit_code"] == 0


# --- kill -9 and resume --------------------------------------------------------------------


async def test_kill_9_midway_then_resume_fetches_each_page_once(
    aiohttp_server, write_job, tmp_path
):
    base, log = await start_site(aiohttp_server)
    log.delay = 0.002
    job = write_job(crawl_job(base, "{depth: 1000, max_pages: 100000, sitemaps: true}"))
    out = tmp_path / "out"

    async def spawn():
        return await asyncio.create_subprocess_exec(
            CRAWLER_BIN, "run", str(job), "-o", str(out), "-q",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    first = await spawn()
    deadline = time.monotonic() + 30
    while sum(log.hits.values()) < 600:
        assert time.monotonic() < deadline, "the crawl did not get going"
        assert first.returncode is None
        await asyncio.sleep(0.005)
    first.kill()
    await first.wait()
    before = Counter(log.hits)
    assert sum(n for p, n in before.items() if p in EVERYTHING) < len(EVERYTHING) - 500

    second = await spawn()
    _, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()

    records = read_manifest(out)
    assert len({r["run"] for r in records}) == 1
    paths = fetched_paths(records, base)
    assert set(paths) == EVERYTHING
    assert max(paths.values()) == 1  # no page recorded twice
    twice = [p for p, n in log.hits.items() if p in EVERYTHING and n > 1]
    assert all(log.hits[p] == 2 for p in twice)
    assert len(twice) <= 16, f"more than the requests in flight were repeated: {twice}"
    assert set(log.hits) - EVERYTHING <= {
        "/robots.txt",  # once per process
        "/sitemap_index.xml",
        "/sitemap1.xml",
        "/sitemap2.xml.gz",
    }
    summary = json.loads((out / ".crawler" / "last.json").read_text())
    assert summary["requests"] == sum(summary["by_depth"].values()) == len(EVERYTHING)


# --- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://example.org/a#frag", "http://example.org/a"),
        ("HTTP://Example.ORG/a", "http://example.org/a"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("http://example.org:8080/a", "http://example.org:8080/a"),
        ("https://example.org:80/a", "https://example.org:80/a"),
        ("http://example.org", "http://example.org/"),
        ("http://example.org/%7euser/%41", "http://example.org/~user/A"),
        ("http://example.org/caf%c3%a9", "http://example.org/caf%C3%A9"),
        ("http://example.org/café", "http://example.org/caf%C3%A9"),
        ("http://example.org/a%2fb", "http://example.org/a%2Fb"),
        ("http://example.org/a/./b/../c", "http://example.org/a/c"),
        ("http://example.org/a?b=2&a=1#x", "http://example.org/a?b=2&a=1"),
        ("http://example.org/a?q=%7e", "http://example.org/a?q=~"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("mailto:a@example.org", None),
        ("ftp://example.org/a", None),
        ("javascript:void(0)", None),
    ],
)
def test_canonical(given, expected):
    assert canonical(URL(given)) == expected


@pytest.mark.parametrize(
    ("kind", "seed", "url", "allowed"),
    [
        ("host", "http://a.example/x/", "https://a.example:8443/y", True),
        ("host", "http://a.example/x/", "http://b.a.example/x/", False),
        ("domain", "http://www.a.example/", "http://a.example/", True),
        ("domain", "http://www.a.example/", "http://docs.a.example/z", True),
        ("domain", "http://www.a.example/", "http://notA.example/", False),
        ("domain", "http://www.a.example/", "http://xa.example/", False),
        ("prefix", "http://a.example/docs/index.html", "http://a.example/docs/deep/x", True),
        ("prefix", "http://a.example/docs/index.html", "http://a.example/docsx", False),
        ("prefix", "http://a.example/docs", "http://a.example/other", True),  # prefix "/"
        ("prefix", "http://a.example/docs/", "http://b.example/docs/", False),
    ],
)
def test_scope(kind, seed, url, allowed):
    scope = Scope.of_seed(URL(seed), FollowSpec(scope=kind))
    parsed = URL(url)
    assert scope.allows(parsed, canonical(parsed) or "") is allowed


def test_page_links_resolve_against_base_and_skip_what_is_not_a_page():
    body = b"""<html><head><base href="https://b.example/docs/">
    <link rel="stylesheet" href="s.css"><link rel="next alternate" href="n"></head><body>
    <a href="a#x">a</a><a href="a">again</a><a href="/abs">abs</a><a href="mailto:x@y">m</a>
    <area href="../up"><iframe src="if"></iframe>
    <a href="http://other.example/">other host</a><img src="img.png"></body></html>"""
    scope = Scope.of_seed(URL("https://b.example/"), FollowSpec())
    found = [url for url, _ in page_links(body, "http://a.example/page", scope)]
    assert found == [
        "https://b.example/docs/a",
        "https://b.example/abs",
        "https://b.example/up",
        "https://b.example/docs/n",
        "https://b.example/docs/if",
    ]
    frames = b'<html><frameset><frame src="f1"><frame src="/f2"></frameset></html>'
    found = [url for url, _ in page_links(frames, "https://b.example/x/", scope)]
    assert found == ["https://b.example/x/f1", "https://b.example/f2"]


def test_sitemap_parse_and_gunzip():
    plain = sitemap(["http://a.example/1?x=1&amp;y=2", "http://a.example/2"])
    assert parse(gunzip(gzip.compress(plain))) == (
        False,
        ["http://a.example/1?x=1&y=2", "http://a.example/2"],
    )
    index = b"<sitemapindex><sitemap><loc><![CDATA[http://a.example/s.xml]]></loc></sitemap>"
    assert parse(index) == (True, ["http://a.example/s.xml"])


@pytest.mark.parametrize(
    ("fetched", "allowed", "blocked"),
    [
        (Fetched(200, b"User-agent: *\nDisallow: /x\n", None, None), False, False),
        (Fetched(404, b"", None, None), True, False),
        (Fetched(403, b"", None, None), True, False),
        (Fetched(429, b"", None, None), False, True),
        (Fetched(500, b"", None, None), False, True),
        (Fetched(None, b"", "timeout", "timed out"), False, True),
        (Fetched(None, b"", "connect", "refused"), False, True),
        (Fetched(None, b"", "redirects", "too many"), True, False),
    ],
)
def test_robots_rules_from_response(fetched, allowed, blocked):
    rules = rules_from(fetched)
    assert rules.allows("http://a.example/x", "bot") is allowed
    assert (rules.blocked is not None) is blocked


def test_agent_token():
    assert agent_token("example-bot/1.0 (+https://example.org/bot)") == "example-bot"
    assert agent_token("plain") == "plain"


def test_frontier_survives_reopening_and_skips_finished_rows(tmp_path):
    from crawler.state.frontier import Frontier
    from crawler.state.sqlite import DoneRow, RunState

    state = RunState(tmp_path / "state.sqlite3")
    state.start_run("run-1", "2024-01-01T00:00:00Z")
    frontier = Frontier(state, claim="first")
    [(seed, queued), duplicate] = frontier.register_seeds([("j", "k0", "u0"), ("j", "k0", "u0")])
    assert duplicate is None and not queued  # a job URL listed twice is fetched once
    rows = [("j", f"k{n}", f"u{n}", 1, "u0", seed) for n in range(1, 6)]
    assert frontier.add(rows, limit=3) == 3  # max_pages
    assert frontier.add(rows, limit=10) == 2  # the seen ones are ignored
    assert frontier.add([("j", "k9", "u9", 1, "u0", seed)], 10, blocked="disallowed") == 1
    assert frontier.block("k5", "unavailable") is True
    state.add_done(DoneRow("k1", True, None, 200, 10, 1))
    state.flush(0)
    state.close()

    # The next process (a resume): same counts, finished and blocked rows not handed out again.
    state = RunState(tmp_path / "state.sqlite3")
    state.resume_run("run-1")
    frontier = Frontier(state, claim="second")
    assert frontier.counts_by_job() == ({"j": 4}, {"j": 2})
    first = frontier.read(0, 2)
    assert [row.url for row in first] == ["u2", "u3"]
    assert [row.url for row in frontier.read(first[-1].id, 10)] == ["u4"]
    assert frontier.register_seeds([("j", "k0", "u0")]) == [(seed, False)]
    assert frontier.blocked() == {"disallowed": 1, "unavailable": 1}
    assert frontier.by_depth() == {"1": 1}
    state.close()
