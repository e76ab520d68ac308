"""conditional: true (issue: batch conditional refetch): validators kept per request in the run
state, sent by the next run; a 304 keeps the file and is recorded ok."""

from __future__ import annotations

import hashlib
from email.utils import formatdate

from aiohttp import web

from .conftest import read_manifest, run_job


def validators_app(state: dict) -> web.Application:
    """/etag/{n}: strong ETag; /lm/{n}: Last-Modified only; both answer 304 when they can."""

    async def etag(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        body = f"{state['version']}:{n}".encode()
        tag = '"' + hashlib.sha256(body).hexdigest()[:12] + '"'
        state["seen"].append(("etag", n, request.headers.get("If-None-Match")))
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.Response(body=body, headers={"ETag": tag, "Content-Type": "text/plain"})

    async def lm(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        stamp = formatdate(1_700_000_000 + state["version"], usegmt=True)
        since = request.headers.get("If-Modified-Since")
        state["seen"].append(("lm", n, since))
        if since == stamp:
            return web.Response(status=304)
        return web.Response(text=f"{state['version']}:{n}", headers={"Last-Modified": stamp})

    app = web.Application()
    app.router.add_get("/etag/{n}", etag)
    app.router.add_get("/lm/{n}", lm)
    return app


async def test_second_run_sends_validators_and_keeps_files_on_304(
    aiohttp_server, write_job, tmp_path
):
    state = {"version": 1, "seen": []}
    server = await aiohttp_server(validators_app(state))
    base = str(server.make_url("")).rstrip("/")
    urls = [f"{base}/etag/{n}" for n in range(3)] + [f"{base}/lm/{n}" for n in range(3)]
    job = write_job(
        "version: 1\ndefaults: {conditional: true}\njobs:\n  - name: c\n    urls:\n"
        + "".join(f"      - {u}\n" for u in urls)
    )
    out = tmp_path / "out" / "job"
    first = await run_job(job)
    assert first["exit_code"] == 0
    assert all(value is None for _, _, value in state["seen"])
    files = {r["url"]: r["path"] for r in read_manifest(out)}
    mtimes = {p: (out / p).stat().st_mtime_ns for p in files.values()}

    state["seen"].clear()
    second = await run_job(job)
    assert second["exit_code"] == 0
    assert second["run"] != first["run"]
    assert all(value is not None for _, _, value in state["seen"]), state["seen"]
    records = [r for r in read_manifest(out) if r["run"] == second["run"]]
    assert len(records) == 6
    for record in records:
        assert record["status"] == 304
        assert record["ok"] is True
        assert record["path"] == files[record["url"]]
        assert (out / record["path"]).stat().st_mtime_ns == mtimes[record["path"]]
        assert hashlib.sha256((out / record["path"]).read_bytes()).hexdigest() == record["sha256"]

    # The content changes: a 200 replaces the file; validators move on.
    state["version"] = 2
    third = await run_job(job)
    assert third["exit_code"] == 0
    records = [r for r in read_manifest(out) if r["run"] == third["run"]]
    assert {r["status"] for r in records} == {200}
    for record in records:
        assert (out / record["path"]).read_text().startswith("2:")


async def test_without_conditional_nothing_is_sent(aiohttp_server, write_job):
    state = {"version": 1, "seen": []}
    server = await aiohttp_server(validators_app(state))
    job = write_job(f"version: 1\njobs:\n  - name: c\n    url: {server.make_url('/etag/1')}\n")
    await run_job(job)
    await run_job(job)
    assert [value for _, _, value in state["seen"]] == [None, None]


async def test_304_without_earlier_file_refetches(aiohttp_server, write_job, tmp_path):
    state = {"version": 1, "seen": []}
    server = await aiohttp_server(validators_app(state))
    job = write_job(
        f"version: 1\njobs:\n  - name: c\n    conditional: true\n    url: {server.make_url('/etag/1')}\n"
    )
    await run_job(job)
    out = tmp_path / "out" / "job"
    [record] = read_manifest(out)
    (out / record["path"]).unlink()  # the user deleted it: a 304 could not keep anything
    summary = await run_job(job)
    assert summary["exit_code"] == 0
    assert state["seen"][-1][2] is None
    assert (out / record["path"]).read_text() == "1:1"
