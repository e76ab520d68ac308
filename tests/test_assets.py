"""Page requisites (C16), as `wget --page-requisites`: `follow: {assets: true}` also fetches
what each page needs to display, once each, at the page's depth, without counting as a link
hop or toward max_pages; on the page's host unless `assets_scope: any`."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from crawler.crawl.assets import css_urls, page_requisites, srcset_urls, stylesheet_requisites

from .conftest import read_manifest, run_job


def site_app(other: str, seen: Counter[str]) -> web.Application:
    pages = {
        "/": f"""<html><head><link rel="stylesheet" href="/css/main.css">
            <link rel="icon" href="/favicon.ico"><script src="/app.js"></script>
            <style>.hero {{ background: url('/img/hero.jpg') }}</style></head>
            <body><img src="/img/a.png" srcset="/img/a-2x.png 2x, /img/a-3x.png 3x">
            <picture><source srcset="/img/p.webp"><img src="/img/p.png"></picture>
            <video poster="/media/poster.jpg"><source src="/media/v.mp4">
            <track src="/media/v.vtt"></video><audio src="/media/a.ogg"></audio>
            <img src="{other}/img/elsewhere.png"><img src="data:image/png;base64,AAAA">
            <a href="/next.html">next</a></body></html>""",
        "/next.html": """<html><head><link rel="stylesheet" href="/css/main.css"></head>
            <body><img src="/img/next.png"><a href="/deep.html">deeper</a></body></html>""",
        "/deep.html": "<html><body><img src='/img/deep.png'></body></html>",
    }
    styles = {
        "/css/main.css": '@import "more.css"; body { background: url(../img/bg.png) }',
        "/css/more.css": '/* url(/img/commented.png) */ .x { background: url("/img/x.png") }',
    }

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        seen[path] += 1
        if path in pages:
            return web.Response(text=pages[path], content_type="text/html")
        if path in styles:
            return web.Response(text=styles[path], content_type="text/css")
        return web.Response(body=b"x" * 10, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


REQUISITES_OF_ROOT = {
    "/css/main.css",
    "/favicon.ico",
    "/app.js",
    "/img/hero.jpg",
    "/img/a.png",
    "/img/a-2x.png",
    "/img/a-3x.png",
    "/img/p.webp",
    "/img/p.png",
    "/media/poster.jpg",
    "/media/v.mp4",
    "/media/v.vtt",
    "/media/a.ogg",
}
FROM_STYLESHEETS = {"/css/more.css", "/img/bg.png", "/img/x.png"}


async def serve(aiohttp_server, seen_here: Counter[str], seen_there: Counter[str]):
    there = await aiohttp_server(site_app("", seen_there), host="127.0.0.2")
    here = await aiohttp_server(site_app(str(there.make_url("")).rstrip("/"), seen_here))
    return str(here.make_url("/")), here, there


def job_text(url: str, follow: str) -> str:
    return f"""
        version: 1
        jobs:
          - name: site
            url: {url}
            save: bytes
            follow: {follow}
    """


async def test_every_requisite_once_at_the_page_depth(aiohttp_server, write_job, tmp_path):
    seen_here: Counter[str] = Counter()
    seen_there: Counter[str] = Counter()
    root, _, _ = await serve(aiohttp_server, seen_here, seen_there)
    job = write_job(job_text(root, "{depth: 1, assets: true, robots: false}"))
    summary = await run_job(job, out=tmp_path / "out")
    assert summary["exit_code"] == 0
    records = read_manifest(tmp_path / "out")
    by_path = {"/" + r["url"].split("/", 3)[3]: r for r in records}
    # The pages (depth 0 and 1, not the one 2 hops away), every requisite of both, and what the
    # stylesheets import or url() (a commented-out url() is not one).
    expected = {"/", "/next.html", "/img/next.png"} | REQUISITES_OF_ROOT | FROM_STYLESHEETS
    assert set(by_path) == expected
    assert "/deep.html" not in seen_here and "/img/commented.png" not in seen_here
    # Each fetched once, though both pages use main.css.
    assert all(count == 1 for count in seen_here.values()), seen_here
    assert len(records) == len(expected)
    # At the page's depth, its referrer the page (or the stylesheet) that needs it.
    assert by_path["/img/a.png"]["depth"] == 0 and by_path["/img/a.png"]["referrer"] == root
    assert by_path["/img/next.png"]["depth"] == 1
    assert by_path["/img/next.png"]["referrer"].endswith("/next.html")
    assert by_path["/css/more.css"]["referrer"].endswith("/css/main.css")
    # Another host's image and a data: URL are not fetched by default.
    assert seen_there == Counter()


async def test_assets_scope_any_and_max_pages(aiohttp_server, write_job, tmp_path):
    seen_here: Counter[str] = Counter()
    seen_there: Counter[str] = Counter()
    root, _, _ = await serve(aiohttp_server, seen_here, seen_there)
    follow = "{depth: 3, max_pages: 1, assets: true, assets_scope: any, robots: false}"
    summary = await run_job(write_job(job_text(root, follow)), out=tmp_path / "out")
    assert summary["exit_code"] == 0
    # max_pages 1: one page through links (next.html), whatever the requisites count.
    assert seen_here["/next.html"] == 1 and seen_here["/deep.html"] == 0
    assert seen_here["/img/next.png"] == 1
    assert set(seen_here) >= REQUISITES_OF_ROOT
    assert seen_there == Counter({"/img/elsewhere.png": 1})


async def test_without_assets_only_pages(aiohttp_server, write_job, tmp_path):
    seen_here: Counter[str] = Counter()
    root, _, _ = await serve(aiohttp_server, seen_here, Counter())
    summary = await run_job(write_job(job_text(root, "{depth: 1, robots: false}")), tmp_path / "o")
    assert summary["exit_code"] == 0
    assert set(seen_here) == {"/", "/next.html"}


def test_extraction_units():
    assert srcset_urls(" a.png 1x,b.png  2x , c.png") == ["a.png", "b.png", "c.png"]
    assert css_urls("@import 'a.css'; @import url(b.css); x{y:url( \"c.png\" )}") == [
        "a.css",
        "b.css",
        "c.png",
    ]
    html = b'<base href="/sub/"><img src="i.png"><img src="#frag"><script src="//cdn.test/s.js">'
    assert page_requisites(html, "http://h.test/dir/page.html") == [
        "http://h.test/sub/i.png",
        "http://cdn.test/s.js",
    ]
    assert stylesheet_requisites(b"a{b:url(data:x)} c{d:url(e.png)}", "http://h.test/css/") == [
        "http://h.test/css/e.png"
    ]
