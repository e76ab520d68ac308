"""A crawl's memory stays bounded however large its pages (issue 14 item 14): a page's links
are read in pieces in one parse thread, so neither lexbor's tree (about ten times the HTML)
nor the page's list of links grows with the page. The crawl runs as the installed command in
a child process whose peak RSS is read once it exited; the pure parts (cutting a page into
pieces, the links found in them) are checked against a whole-page parse."""

from __future__ import annotations

import io
import re

from aiohttp import web
from yarl import URL

from crawler.config.spec import FollowSpec
from crawler.crawl import links
from crawler.crawl.links import PageLinks, Scope, page_links, pieces, raw_links

from .conftest import read_manifest
from .test_memory import measure

SMALL = 40  # /p/0 .. /p/39
DISTINCT = 20_000  # /q/0 .. : excluded by the job, but each is resolved once per page


def big_page(size: int, name: str) -> bytes:
    """``size`` bytes of link-dense HTML: links to the small pages (with fragments), to many
    excluded pages, and, at its very end, to /tail/<name>, which only this page links to."""
    head = b"<!DOCTYPE html><html><head><title>big</title></head><body><main>\n"
    parts, total, i = [head], len(head), 0
    filler = b" lorem ipsum dolor sit amet" * 8
    while total < size:
        chunk = (
            (
                f'<p><a href="/p/{i % SMALL}#s{i % 7}">p</a> <a href="../q/{i % DISTINCT}">q</a>'
            ).encode()
            + filler
            + b"</p>\n"
        )
        parts.append(chunk)
        total += len(chunk)
        i += 1
    parts.append(f'<a href="/tail/{name}">the end</a></main></body></html>\n'.encode())
    return b"".join(parts)


def site(sizes: dict[str, int]) -> web.Application:
    pages = {name: big_page(size, name) for name, size in sizes.items()}

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=pages[request.match_info["name"]], content_type="text/html")

    async def small(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        return web.Response(text=f"<html><body>page {n}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/big/{name}", big)
    app.router.add_get("/p/{n}", small)
    app.router.add_get("/tail/{n}", small)
    return app


async def test_large_pages_do_not_grow_a_crawls_memory(aiohttp_server, tmp_path):
    """One page of 12 MB (spilled to disk while fetched) and one of 6 MB (kept in memory).
    Parsed whole, in threads of asyncio's default executor, this crawl peaked at 211 MiB
    against 45 MiB for a one-request run; read in pieces in one parse thread, at 76 MiB. It
    must stay within 45 MiB of the one-request run."""
    server = await aiohttp_server(site({"spilled": 12_000_000, "memory": 6_000_000}))
    base = str(server.make_url("")).rstrip("/")
    (tmp_path / "one.yaml").write_text(f"version: 1\njobs: [{{name: one, url: {base}/p/0}}]\n")
    (tmp_path / "crawl.yaml").write_text(
        f"""version: 1
concurrency: 8
jobs:
  - name: docs
    urls: ["{base}/big/spilled", "{base}/big/memory"]
    save: bytes
    follow: {{depth: 1, exclude: ["/q/"]}}
"""
    )
    one = await measure(
        "run", "one.yaml", "-o", "one", stdout=tmp_path / "one.txt", cwd=tmp_path, timeout=120
    )
    assert one.code == 0, one.stderr
    done = await measure(
        "run", "crawl.yaml", "-o", "out", stdout=tmp_path / "out.txt", cwd=tmp_path, timeout=300
    )
    assert done.code == 0, done.stderr
    print(
        f"crawl of a 12 MB and a 6 MB page: peak RSS {done.peak_mib:.1f} MiB, "
        f"a one-request run {one.peak_mib:.1f} MiB, {done.seconds:.1f} s"
    )
    fetched = {r["url"].removeprefix(base) for r in read_manifest(tmp_path / "out")}
    # Every link was found, the last of each page too.
    assert fetched == {
        "/big/spilled",
        "/big/memory",
        "/tail/spilled",
        "/tail/memory",
        *(f"/p/{n}" for n in range(SMALL)),
    }
    assert done.peak_mib < one.peak_mib + 45, (done.peak_mib, one.peak_mib)


# --- the pieces ------------------------------------------------------------------------------


def test_pieces_cut_before_tags_and_lose_nothing(monkeypatch):
    monkeypatch.setattr(links, "PIECE_BYTES", 4096)
    monkeypatch.setattr(links, "CUT_WINDOW", 512)
    body = big_page(200_000, "x")
    cut = list(pieces(io.BytesIO(body).read))
    assert b"".join(cut) == body
    assert len(cut) > 40
    assert all(len(piece) <= 4096 + 512 for piece in cut)
    assert all(re.match(rb"<[A-Za-z/!]", piece) for piece in cut[1:])
    # No tag to cut before: the piece is cut where it ends.
    text = b"x" * 10_000
    assert b"".join(pieces(io.BytesIO(text).read)) == text
    assert list(pieces(io.BytesIO(b"").read)) == []


def test_links_in_pieces_are_the_links_of_the_whole_page(monkeypatch):
    body = big_page(300_000, "x")
    scope = Scope.of_seed(URL("http://a.example/big/x"), FollowSpec(exclude=(r"/q/\d*7$",)))
    monkeypatch.setattr(links, "PIECE_BYTES", 1 << 30)
    whole = page_links(body, "http://a.example/big/x", scope)  # one piece
    monkeypatch.setattr(links, "PIECE_BYTES", 8192)
    monkeypatch.setattr(links, "CUT_WINDOW", 1024)
    reader = PageLinks(io.BytesIO(body).read, "http://a.example/big/x", scope)
    batches = []
    while (batch := reader.next_batch()) is not None:
        batches.append(batch)
    assert len(batches) > 30
    in_pieces = [link for batch in batches for link in batch]
    assert in_pieces == whole  # the same links, each once, in document order
    # ... and what a parse of the whole page finds, resolved by hand.
    _, hrefs = raw_links(body)
    expected = {
        str(URL("http://a.example/big/x").join(URL(h.partition("#")[0])))
        for h in hrefs
        if not re.search(r"/q/\d*7$", h)
    }
    assert {url for url, _ in whole} == expected
    assert len(whole) == len(expected) > 900  # each once
    assert whole[-1] == ("http://a.example/tail/x", "http://a.example:80")


def test_base_href_applies_from_its_piece_on(monkeypatch):
    monkeypatch.setattr(links, "PIECE_BYTES", 256)
    monkeypatch.setattr(links, "CUT_WINDOW", 128)
    head = b'<html><head><base href="https://b.example/docs/"></head><body>'
    body = head + b"".join(b'<p><a href="a%d">x</a></p>' % i for i in range(100)) + b"</body>"
    scope = Scope.of_seed(URL("https://b.example/"), FollowSpec())
    found = page_links(body, "http://a.example/page", scope)
    assert [url for url, _ in found] == [f"https://b.example/docs/a{i}" for i in range(100)]
