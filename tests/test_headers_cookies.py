"""Response headers in the manifest and cookies (C3, C6, C8, C17), through the installed
command: HEAD and OPTIONS save no file and record the response's headers (names as received,
a repeated header joined with ", "), so does every request of a job with
`record_headers: true`; `cookies` are sent with each request of their job only;
`keep_cookies: true` keeps the cookies servers set within that job only, and without it a
Set-Cookie is ignored; no cookie value lands in any file under OUT."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from aiohttp import web
from multidict import CIMultiDict

from .conftest import crawler_cli, read_manifest, run_job

BODY = b"hello, headers\n"
LAST_MODIFIED = "Wed, 01 May 2024 02:15:00 GMT"
ALLOW = "GET, HEAD, OPTIONS"
OPTIONS_BODY = b"an OPTIONS answer may have a body\n"


class Cookies:
    """What the server saw: the Cookie header (or None) of each request, by path and query."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str | None]] = defaultdict(list)

    def note(self, request: web.Request) -> None:
        self.seen[request.path_qs].append(request.headers.get("Cookie"))

    def all_sent(self) -> list[str]:
        return [c for values in self.seen.values() for c in values if c is not None]


def app_for(cookies: Cookies) -> web.Application:
    def resource_headers() -> CIMultiDict[str]:
        return CIMultiDict(
            [
                ("Content-Type", "text/plain"),
                ("ETag", '"v1"'),
                ("Last-Modified", LAST_MODIFIED),
                ("X-Multi", "first"),
                ("X-Multi", "second"),
                ("x-lower-case", "as sent"),
            ]
        )

    async def resource(request: web.Request) -> web.Response:
        cookies.note(request)
        return web.Response(body=BODY, headers=resource_headers())

    async def options(request: web.Request) -> web.Response:
        cookies.note(request)
        headers = resource_headers()
        headers["Allow"] = ALLOW
        return web.Response(body=OPTIONS_BODY, headers=headers)

    async def plain(request: web.Request) -> web.Response:
        cookies.note(request)
        return web.Response(text="ok\n")

    async def login(request: web.Request) -> web.Response:
        cookies.note(request)
        response = web.Response(text="logged in\n")
        response.set_cookie("sid", "server-set-S3CR3T", path="/")
        return response

    async def login_then_go(request: web.Request) -> web.Response:
        cookies.note(request)
        response = web.HTTPFound(f"/check?after={request.query.get('j', '')}")
        response.set_cookie("hop", "set-on-redirect", path="/")
        raise response

    app = web.Application()
    app.router.add_get("/res", resource)  # HEAD too
    app.router.add_route("OPTIONS", "/res", options)
    app.router.add_get("/plain", plain)
    app.router.add_get("/check", plain)
    app.router.add_get("/login", login)
    app.router.add_get("/login-redirect", login_then_go)
    return app


@pytest.fixture
async def cookie_site(aiohttp_server) -> tuple[str, Cookies]:
    cookies = Cookies()
    server = await aiohttp_server(app_for(cookies))
    return str(server.make_url("")).rstrip("/"), cookies


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def assert_resource_headers(headers: dict[str, str], body: bytes = BODY) -> None:
    assert headers["ETag"] == '"v1"'
    assert headers["Last-Modified"] == LAST_MODIFIED
    assert headers["Content-Length"] == str(len(body))
    assert headers["X-Multi"] == "first, second"
    assert headers["x-lower-case"] == "as sent"  # the name as the server spelled it
    assert "x-multi" not in headers and "X-MULTI" not in headers


# --- headers --------------------------------------------------------------------------------


async def test_head_and_options_save_no_file_and_record_headers(cookie_site, write_job, tmp_path):
    base, _ = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: head
            method: HEAD
            url: {base}/res
          - name: opts
            method: OPTIONS
            url: {base}/res
            save: bytes
          - name: get
            url: {base}/res
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    out = tmp_path / "out" / "job"
    records = {r["job"]: r for r in read_manifest(out)}
    assert len(records) == 3

    for name, body in (("head", BODY), ("opts", OPTIONS_BODY)):
        record = records[name]
        assert record["ok"] and record["status"] == 200, record
        assert record["path"] is None and record["bytes"] == 0, record
        assert files_under(out / name) == []
        assert_resource_headers(record["headers"], body)
    assert "Allow" not in records["head"]["headers"]
    assert records["opts"]["headers"]["Allow"] == ALLOW

    # The dry run says so too: no file for HEAD and OPTIONS.
    dry = await crawler_cli("run", str(job), "--dry-run", "--fresh", cwd=tmp_path)
    assert dry.code == 0, dry.stderr
    targets = {line.split(" ")[0]: line.rsplit(" -> ", 1)[1] for line in dry.stdout.splitlines()}
    assert targets["HEAD"] == "-" and targets["OPTIONS"] == "-" and targets["GET"] != "-"

    # A GET without record_headers: a file, and no headers in its line.
    get = records["get"]
    assert (out / get["path"]).read_bytes() == BODY
    assert get.get("headers") is None
    # Nothing else under OUT but the GET's file, the manifest and crawler's own folder.
    tops = {p.relative_to(out).parts[0] for p in files_under(out)}
    assert tops == {"get", "manifest.jsonl", ".crawler"}


async def test_record_headers_on_get_keeps_the_file_too(cookie_site, write_job, tmp_path):
    base, _ = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{record_headers: true, save: bytes}}
        jobs:
          - name: rec
            urls: ["{base}/res", "{base}/plain"]
          - name: own
            url: {base}/res
            record_headers: false
          - name: failing
            url: {base}/missing
            retries: 0
          - name: login
            url: {base}/login
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    out = tmp_path / "out" / "job"
    records = {(r["job"], r["url"]): r for r in read_manifest(out)}
    rec = records[("rec", f"{base}/res")]
    assert rec["ok"] and (out / rec["path"]).read_bytes() == BODY and rec["bytes"] == len(BODY)
    assert_resource_headers(rec["headers"])
    assert records[("rec", f"{base}/plain")]["headers"]["Content-Type"].startswith("text/plain")
    assert records[("own", f"{base}/res")].get("headers") is None
    # A response that failed (404) still has headers to record.
    failing = records[("failing", f"{base}/missing")]
    assert failing["status"] == 404 and failing["error"]["kind"] == "http"
    assert "Content-Type" in failing["headers"]
    # Headers as received: a Set-Cookie too (what a server sets is its data, not a secret
    # the job file holds; without keep_cookies it is never sent back).
    login = records[("login", f"{base}/login")]
    assert login["headers"]["Set-Cookie"].startswith("sid=server-set-S3CR3T")


# --- cookies --------------------------------------------------------------------------------

SECRET = "c00kie-VALUE-n0t-for-disk"


async def test_cookies_go_with_their_job_only(cookie_site, write_job, tmp_path):
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: with
            urls: ["{base}/plain?j=with1", "{base}/plain?j=with2", "{base}/res?j=with3"]
            cookies: {{a: "1", token: "{SECRET}"}}
          - name: without
            urls: ["{base}/plain?j=without1", "{base}/plain?j=without2"]
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    for path in ("/plain?j=with1", "/plain?j=with2", "/res?j=with3"):
        [sent] = cookies.seen[path]
        assert sent is not None and "a=1" in sent.split("; "), sent
        assert f"token={SECRET}" in sent.split("; ")
    for path in ("/plain?j=without1", "/plain?j=without2"):
        assert cookies.seen[path] == [None]


async def test_cookies_under_defaults_go_with_every_job(cookie_site, write_job, tmp_path):
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{cookies: {{a: "1"}}}}
        jobs:
          - name: one
            url: {base}/plain?j=one
          - name: two
            url: {base}/plain?j=two
            cookies: {{b: "2"}}
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/plain?j=one"] == ["a=1"]
    assert cookies.seen["/plain?j=two"] == ["b=2"]  # a job's value replaces the default


async def test_keep_cookies_keeps_them_within_the_job_only(cookie_site, write_job, tmp_path):
    base, cookies = cookie_site
    # One request at a time, in the order listed (round-robin over the jobs), so every
    # /check comes after the keeper's /login.
    job = write_job(f"""
        version: 1
        concurrency: 1
        per_host: 1
        defaults: {{retries: 0}}
        jobs:
          - name: keeper
            urls: ["{base}/login?j=keeper", "{base}/check?j=keeper", "{base}/check?j=keeper2"]
            keep_cookies: true
          - name: ignorer
            urls: ["{base}/login?j=ignorer", "{base}/check?j=ignorer"]
            keep_cookies: false
          - name: other
            urls: ["{base}/check?j=other1", "{base}/check?j=other2"]
          - name: other_keeper
            urls: ["{base}/check?j=ok1", "{base}/check?j=ok2"]
            keep_cookies: true
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/login?j=keeper"] == [None]
    assert cookies.seen["/check?j=keeper"] == ["sid=server-set-S3CR3T"]
    assert cookies.seen["/check?j=keeper2"] == ["sid=server-set-S3CR3T"]
    # Set-Cookie without keep_cookies is ignored, and no other job gets keeper's cookie.
    for path in ("/check?j=ignorer", "/check?j=other1", "/check?j=other2"):
        assert cookies.seen[path] == [None], path
    for path in ("/check?j=ok1", "/check?j=ok2"):
        assert cookies.seen[path] == [None], path

    # The next run of the same job file starts with an empty jar.
    cookies.seen.clear()
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/login?j=keeper"] == [None]


async def test_keep_cookies_set_by_a_redirect_for_later_requests(cookie_site, write_job, tmp_path):
    """A cookie set by a redirect (the usual login flow) is kept for the job's next request."""
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        concurrency: 1
        per_host: 1
        defaults: {{retries: 0}}
        jobs:
          - name: keeper
            urls: ["{base}/login-redirect?j=k", "{base}/check?j=later"]
            keep_cookies: true
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/check?j=later"] == ["hop=set-on-redirect"]


async def test_keep_cookies_on_the_redirect_target(cookie_site, write_job, tmp_path):
    """The redirect's own target gets the cookie the redirect set, as browsers and curl's
    cookie engine (-b FILE -c FILE -L) send it: a login that answers 302 + Set-Cookie only
    works that way."""
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: keeper
            url: {base}/login-redirect?j=k
            keep_cookies: true
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/login-redirect?j=k"] == [None]
    assert cookies.seen["/check?after=k"] == ["hop=set-on-redirect"]


async def test_a_new_run_in_the_same_process_starts_with_an_empty_jar(
    cookie_site, write_job, tmp_path
):
    """In process (as this suite and any embedding runs it): a second Run of a job with
    keep_cookies must not send what the first Run's servers set."""
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        concurrency: 1
        per_host: 1
        jobs:
          - name: keeper
            urls: ["{base}/login?j=k", "{base}/check?j=k"]
            keep_cookies: true
    """)
    try:
        await run_job(job, out=tmp_path / "first")
        await run_job(job, out=tmp_path / "second")
    finally:
        from crawler.http.cookies import forget

        forget()  # whatever the outcome, no jar outlives this test in this process
    assert cookies.seen["/login?j=k"] == [None, None]


async def test_cookies_are_not_sent_to_another_origin_after_a_redirect(
    cookie_site, aiohttp_server, write_job, tmp_path
):
    """A job's cookies go to the URLs it lists; a redirect to another origin (here another
    port) drops them, as it drops Authorization."""
    base, cookies = cookie_site
    elsewhere = Cookies()
    other = await aiohttp_server(app_for(elsewhere))
    target = str(other.make_url("/plain?j=landed"))

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    hop = web.Application()
    hop.router.add_get("/away", away)
    start = await aiohttp_server(hop)
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: j
            urls: ["{start.make_url("/away")}", "{base}/plain?j=direct"]
            cookies: {{token: "{SECRET}"}}
            keep_cookies: true
    """)
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert cookies.seen["/plain?j=direct"] == [f"token={SECRET}"]
    assert elsewhere.seen["/plain?j=landed"] == [None]


async def test_no_cookie_value_lands_under_out(cookie_site, write_job, tmp_path):
    """C3: the Cookie values a job sends never appear in the manifest, logs, the summary or
    any file under OUT (the server here never echoes them)."""
    base, cookies = cookie_site
    job = write_job(f"""
        version: 1
        defaults: {{retries: 1, cookies: {{token: "{SECRET}"}}}}
        jobs:
          - name: ok
            urls: ["{base}/plain?j=1", "{base}/res?j=2"]
          - name: failing
            url: {base}/missing
          - name: head
            method: HEAD
            url: {base}/res?j=3
          - name: keeper
            urls: ["{base}/login?j=k", "{base}/check?j=k"]
            keep_cookies: true
    """)
    # A job file refused for a typo prints no cookie value either.
    typo = job.read_text().replace("keep_cookies: true", "keep_cookie: true")
    refused = write_job(typo, "typo.yaml")
    done = await crawler_cli("run", str(refused), cwd=tmp_path)
    assert done.code == 2 and "keep_cookie" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    for fmt in ("text", "json"):
        done = await crawler_cli(
            "run", str(job), "--fresh", "--log-format", fmt, "--metrics", "m.prom", cwd=tmp_path
        )
        assert done.code == 1, done.stderr
        assert SECRET not in done.stderr + done.stdout
    assert cookies.seen["/plain?j=1"][0] == f"token={SECRET}"  # it was sent
    out = tmp_path / "out" / "job"
    report = await crawler_cli("report", str(out))
    assert report.code == 0, report.stderr
    found = [p for p in files_under(out) if SECRET.encode() in p.read_bytes()]
    assert found == []
    assert SECRET.encode() not in (tmp_path / "m.prom").read_bytes()


# --- the job file's checks ------------------------------------------------------------------

PROBLEM_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<key>[^:]+): (?P<message>.+)$")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("host_down_after: -1\njobs:\n  - {name: a, url: 'http://h/'}\n", 2, "host_down_after"),
        ("host_down_after: 1.5\njobs:\n  - {name: a, url: 'http://h/'}\n", 2, "host_down_after"),
        (
            "host_down_after: 'off'\njobs:\n  - {name: a, url: 'http://h/'}\n",
            2,
            "host_down_after",
        ),
        ("jobs:\n  - name: a\n    url: http://h/\n    record_headers: 'yes'\n", 5, None),
        ("jobs:\n  - name: a\n    url: http://h/\n    keep_cookies: 1\n", 5, None),
        ("jobs:\n  - name: a\n    url: http://h/\n    cookies: [a]\n", 5, None),
        ("jobs:\n  - name: a\n    url: http://h/\n    cookies: {a: [1, 2]}\n", 5, None),
        ("jobs:\n  - name: a\n    url: http://h/\n    cookies: {'a b': '1'}\n", 5, None),
        ("jobs:\n  - name: a\n    url: http://h/\n    cookies: {a: 'x;y'}\n", 5, None),
        ("defaults: {record_headers: 'yes'}\njobs:\n  - {name: a, url: 'http://h/'}\n", 2, None),
    ],
)
async def test_validate_rejects_bad_values(write_job, tmp_path, text, line, key):
    job = write_job("version: 1\n" + text)
    done = await crawler_cli("validate", str(job), cwd=tmp_path)
    assert done.code == 2, done.stderr
    [problem] = done.stderr.strip().splitlines()
    match = PROBLEM_RE.match(problem)
    assert match, problem
    assert match["file"] == str(job) and int(match["line"]) == line, problem
    if key is None:
        # The key path of the value: the key named in the line's text.
        word = re.search(r"(record_headers|keep_cookies|cookies)", text.splitlines()[line - 2])
        assert word
        expected = ("defaults." if text.startswith("defaults") else "jobs[0].") + word[1]
        assert match["key"] == expected or match["key"].startswith(expected + "."), problem
    else:
        assert match["key"] == key, problem
    run = await crawler_cli("run", str(job), cwd=tmp_path)
    assert run.code == 2 and run.stderr == done.stderr
    assert not (tmp_path / "out").exists()
