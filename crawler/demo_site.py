"""The bundled demo site (an aiohttp.web app on 127.0.0.1, free port) and `crawler demo`,
which runs the packaged demo job file against it (its `filename` template keeps result names
the same from run to run, whatever port the site gets)."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path

from aiohttp import web

from .config.jobfile import load_job_file
from .progress import Progress
from .report.summary import summary_line
from .run.runner import Run, RunOptions

DEMO_ENV = "CRAWLER_DEMO_URL"

_PAGES = {
    # name: (text, codec, declare the charset in the header?, in a meta tag?)
    "zh": ("中文网页 你好 世界。这是一个用简体中文写的示例页面。", "gb2312", False, False),
    "ja": ("日本語のページです。こんにちは、世界。", "shift_jis", True, False),
    "ru": ("Привет, мир! Это пример страницы на русском языке.", "cp1251", False, True),
    "fr": ("Bonjour le monde, voilà une page en français.", "latin-1", True, False),
}


def _page(name: str) -> web.Response:
    text, codec, in_header, in_meta = _PAGES[name]
    meta = f'<meta charset="{codec}">' if in_meta else ""
    html = f"<!doctype html><html><head>{meta}<title>{name}</title></head><body><p>{text}</p>"
    html += "".join(f'<a href="/pages/{other}">{other}</a> ' for other in _PAGES) + "</body></html>"
    content_type = f"text/html; charset={codec}" if in_header else "text/html"
    return web.Response(body=html.encode(codec), headers={"Content-Type": content_type})


async def _get(request: web.Request) -> web.Response:
    args = {k: request.query.getall(k) for k in request.query}
    return web.json_response(
        {
            "args": {k: v[0] if len(v) == 1 else v for k, v in args.items()},
            "headers": dict(request.headers),
            "url": str(request.url),
        }
    )


async def _post(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return web.json_response({"json": parsed, "data": body.decode("utf-8", "replace")})


async def _pages(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _PAGES:
        raise web.HTTPNotFound()
    return _page(name)


async def _item(request: web.Request) -> web.Response:
    number = int(request.match_info["n"])
    return web.json_response({"id": number, "name": f"item {number}", "tags": ["demo"]})


async def _file(request: web.Request) -> web.Response:
    number = int(request.match_info["n"])
    return web.Response(
        body=bytes(range(256)) * (number + 1), content_type="application/octet-stream"
    )


# A small documentation tree for the crawl job: path under /docs/ -> (title, links).
_DOCS = {
    "": (
        "Documentation",
        ["intro", "guide/", "guide/setup#install", "private/notes", "mailto:docs@example.org"],
    ),
    "intro": ("Introduction", ["./", "guide/"]),
    "guide/": ("Guide", ["setup", "faq", "../intro"]),
    "guide/setup": ("Setup", ["../", "/docs/"]),
    "guide/faq": ("Questions", ["setup#top"]),
    "private/notes": ("Private notes", []),
}
_ROBOTS = "User-agent: *\nDisallow: /docs/private/\n"


async def _docs(request: web.Request) -> web.Response:
    page = _DOCS.get(request.match_info["path"])
    if page is None:
        raise web.HTTPNotFound()
    title, links = page
    items = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    html = f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
    return web.Response(text=f"{html}<ul>{items}</ul></body></html>", content_type="text/html")


async def _robots(request: web.Request) -> web.Response:
    return web.Response(text=_ROBOTS)


def demo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/robots.txt", _robots)
    app.router.add_get("/docs/{path:.*}", _docs)
    app.router.add_get("/get", _get)
    app.router.add_post("/post", _post)
    app.router.add_get("/pages/{name}", _pages)
    app.router.add_get("/items/{n:\\d+}", _item)
    app.router.add_get("/files/{n:\\d+}", _file)
    return app


async def start_demo_site() -> tuple[web.AppRunner, str]:
    """Start the demo site on 127.0.0.1 with a free port; returns the runner and base URL."""
    runner = web.AppRunner(demo_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def demo_job_path() -> Path:
    return Path(str(resources.files("crawler") / "demo" / "demo.yaml"))


async def run_demo(out: Path, job_path: Path, progress: Progress | None) -> int:
    """Serve the demo site, run the demo job against it into ``out`` (absolute)."""
    runner, base = await start_demo_site()
    try:
        print(f"demo site running at {base}", file=sys.stderr)
        job_file = load_job_file(job_path, {**os.environ, DEMO_ENV: base})
        run = Run(
            job_file,
            RunOptions(out=out, fresh=True),
            on_finished=progress.update if progress else None,
        )
        if progress is not None:
            async with progress.running():
                summary = await run.run()
        else:
            summary = await run.run()
    finally:
        await runner.cleanup()
    print(summary_line(summary), file=sys.stderr)
    print(f"results: {out}/ (every request is listed in {out}/manifest.jsonl)")
    return int(summary["exit_code"])
