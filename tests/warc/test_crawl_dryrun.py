"""save: warc with --dry-run (the WARC file each request would go to) and in crawl mode
(links read from the bodies, each page archived once)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

from ..conftest import crawler_cli, read_manifest
from . import origin as o
from .readers import cdxj, read_warcio, record_at


async def test_dry_run_shows_the_warc_file_pattern(aiohttp_server, tmp_path):
    server = await aiohttp_server(o.origin_app(o.Origin()))
    urls = [str(server.make_url(p)) for p in ("/text", "/binary")]
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {"name": "arch", "urls": urls, "save": "warc"},
                    {"name": "plain", "url": urls[0], "save": "bytes"},
                ],
            }
        )
    )
    out = tmp_path / "out"
    done = await crawler_cli("run", str(job), "--dry-run", "-o", str(out))
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    for url in urls:
        assert f"GET {url} -> {out}/arch/arch-<run>-NNNNN.warc.gz" in lines, done.stdout
    assert any(line.startswith(f"GET {urls[0]} -> {out}/plain/") for line in lines)
    assert not out.exists() or not (out / "arch").exists()  # nothing fetched, nothing written


async def test_crawl_mode_archives_each_linked_page_once(aiohttp_server, tmp_path):
    origin = o.Origin()
    server = await aiohttp_server(o.origin_app(origin))
    start = str(server.make_url("/site/0.html"))
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {
                        "name": "crawl",
                        "url": start,
                        "save": "warc",
                        "retries": 0,
                        "follow": {"depth": 10, "robots": False},
                    }
                ],
            }
        )
    )
    out = tmp_path / "out"
    done = await crawler_cli("run", str(job), "-o", str(out))
    assert done.code == 0, done.stderr
    pages = {str(server.make_url(f"/site/{n}.html")): n for n in o.SITE_LINKS}
    lines = read_manifest(out)
    assert Counter(line["url"] for line in lines) == Counter(list(pages))  # every page, once
    assert all(origin.hits[f"/site/{n}.html"] == 1 for n in o.SITE_LINKS)
    files = sorted((out / "crawl").iterdir())
    assert len(files) == 1 and files[0].name.endswith("-00000.warc.gz")
    records = read_warcio(files[0])
    assert records[0].type == "warcinfo"
    responses = Counter(r.uri for r in records if r.type == "response")
    assert responses == Counter(list(pages))
    for line in lines:
        record = record_at(out / line["path"], line["warc_offset"], line["warc_length"])
        n = pages[line["url"]]
        body = o.page(n, o.SITE_LINKS[n])
        # Odd pages came gzip-encoded: stored as sent, their links read all the same.
        expected = gzip.compress(body, mtime=0) if n % 2 else body
        assert record.payload == expected
        assert record.http("Content-Encoding") == (["gzip"] if n % 2 else [])
        assert line["depth"] == min_depth(n)
    indexed = Counter(f["url"] for _, _, f in cdxj(files))
    assert indexed == Counter(list(pages))


def min_depth(target: int) -> int:
    """Link hops from page 0 to ``target`` in SITE_LINKS (breadth first)."""
    depth, frontier, seen = 0, [0], {0}
    while target not in frontier:
        depth += 1
        frontier = [k for n in frontier for k in o.SITE_LINKS[n] if k not in seen]
        seen.update(frontier)
    return depth
