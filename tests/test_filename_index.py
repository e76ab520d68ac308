"""`filename` templates and folder URLs (C6): `{path}` of `/` or `/docs/` names the folder's
`index`, as wget does (`index.html`, `docs/index.html`), instead of an empty name that fell back
to the default `host-<hash>.html`."""

from __future__ import annotations

import re

import pytest
import yaml
from yarl import URL

from crawler.tasks import naming

from .conftest import crawler_cli, read_manifest

KEY = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("template", "url", "ext", "expected"),
    [
        ("{path}", "http://h/", ".html", "index.html"),
        ("{path}", "http://h", ".html", "index.html"),
        ("{path}", "http://h/docs/", ".html", "docs/index.html"),
        ("{path}", "http://h/docs", ".html", "docs"),
        ("{path}", "http://h/docs/a.html", ".html", "docs/a.html"),
        ("{path}", "http://h/?page=2", ".json", "index.json"),
        ("{path}/", "http://h/docs/", ".html", "docs/index.html"),
        ("{path}{ext}", "http://h/docs", ".html", "docs.html"),
        ("{path}{ext}", "http://h/docs/", ".html", "docs/index.html"),
        ("{host}/{path}{ext}", "http://h/docs/", ".html", "h/docs/index.html"),
        ("{host}/{path}{ext}", "http://h:8080/", ".txt", "h/index.txt"),
        ("{host}/{path}", "http://h/a//b//", ".html", "h/a/b/index.html"),
        # {path} not at the end: the template says what follows it.
        ("{path}-{index}", "http://h/docs/", ".html", "docs/index-7"),
        ("{path}.htm", "http://h/", ".html", "index.htm"),
        ("{query}", "http://h/?q=1", ".html", "q=1"),
    ],
)
def test_folder_urls_name_their_index(template, url, ext, expected):
    assert naming.render_template(template, URL(url), KEY, 7, ext) == expected


async def test_run_saves_folder_pages_as_index_html(aiohttp_server, tmp_path):
    """End to end with the installed command: a site with /, /docs/ and /docs/a.html saved
    with `filename: "{path}"` gives index.html, docs/index.html, docs/a.html; a second request
    that maps to index.html too still gets a file of its own."""
    from aiohttp import web

    bodies = {
        "/": "<p>home</p>",
        "/docs/": "<p>docs index</p>",
        "/docs/a.html": "<p>page a</p>",
    }

    async def handler(request: web.Request) -> web.Response:
        text = bodies[request.path]
        if request.query:
            text += " " + request.query_string
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    for path in bodies:
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    host = URL(base).host
    urls = [base + path for path in bodies]
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "jobs": [
                    {"name": "wget", "filename": "{path}", "urls": [*urls, base + "/?page=2"]},
                    {"name": "hosts", "filename": "{host}/{path}{ext}", "urls": urls},
                ],
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = await crawler_cli("run", str(job), "-o", str(out), "--no-progress")
    assert done.code == 0, done.stderr
    records = read_manifest(out)
    assert len(records) == 7
    paths = {(r["job"], r["url"].removeprefix(base)): r["path"] for r in records}
    assert paths[("wget", "/")] == "wget/index.html"
    assert paths[("wget", "/docs/")] == "wget/docs/index.html"
    assert paths[("wget", "/docs/a.html")] == "wget/docs/a.html"
    # Same name as "/": the request hash keeps it apart (C6).
    assert re.fullmatch(r"wget/index-[0-9a-f]{16}\.html", paths[("wget", "/?page=2")])
    assert paths[("hosts", "/")] == f"hosts/{host}/index.html"
    assert paths[("hosts", "/docs/")] == f"hosts/{host}/docs/index.html"
    for (_, url), path in paths.items():
        expected = bodies[URL(url).path] + (" " + URL(url).query_string if "?" in url else "")
        assert (out / path).read_text("utf-8") == expected
    files = sorted(str(p.relative_to(out)) for p in (out / "wget").rglob("*") if p.is_file())
    assert len(files) == 4
    assert not [f for f in files if re.search(r"127\.0\.0\.1_\d+", f)]  # no default names
