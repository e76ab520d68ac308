"""What the server sees (methods, bodies, query, headers), per-request timeouts, and the
manifest line of every finished request (C2 request keys, C8)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import time
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import brotli  # type: ignore[import-untyped]
import pytest
from aiohttp import web

from .conftest import read_manifest, run_job

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")


def by_url(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in records}


def by_job(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["job"]: r for r in records}


def seen_for(site: Any, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in site.seen.requests if r["method"] == method and r["path"] == path]


# --- methods, bodies, query, headers -------------------------------------------------------


async def test_every_method_reaches_the_server(site, write_job, tmp_path):
    lines = ["version: 1", "jobs:"]
    for method in METHODS:
        lines += [
            f"  - name: m-{method.lower()}",
            f"    method: {method}",
            f"    url: {site.url}/echo?m={method}",
            "    save: bytes",
        ]
    job = write_job("\n".join(lines) + "\n")
    summary = await run_job(job)
    out = tmp_path / "out" / "job"
    assert summary["exit_code"] == 0
    records = by_job(read_manifest(out))
    assert sorted(records) == sorted(f"m-{m.lower()}" for m in METHODS)
    for method in METHODS:
        [request] = [r for r in site.seen.requests if r["query"] == f"m={method}"]
        assert request["method"] == method
        record = records[f"m-{method.lower()}"]
        assert record["method"] == method
        assert record["ok"] is True
        assert record["status"] == 200
        assert record["attempts"] == 1
        if method in ("HEAD", "OPTIONS"):
            # HEAD and OPTIONS save no file (C6); the line records the headers (C8, C17).
            assert record["path"] is None
            assert record["bytes"] == 0
            assert "Content-Type" in record["headers"]
            continue
        echoed = json.loads((out / record["path"]).read_bytes())
        assert echoed["method"] == method


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_json_body(site, write_job, tmp_path, method):
    job = write_job(f"""
        version: 1
        jobs:
          - name: j
            method: {method}
            url: {site.url}/echo
            json: {{test: object, n: [1, 2.5, null, true], word: "héllo ☃"}}
    """)
    assert (await run_job(job))["exit_code"] == 0
    [request] = seen_for(site, method, "/echo")
    assert json.loads(request["body"]) == {
        "test": "object",
        "n": [1, 2.5, None, True],
        "word": "héllo ☃",
    }
    assert request["headers"]["Content-Type"] == "application/json"
    assert int(request["headers"]["Content-Length"]) == len(request["body"])


async def test_data_body_arrives_byte_for_byte(site, write_job, tmp_path):
    text = "raw line 1\nraw line 2 ✓ & = ?"
    job = write_job(f"""
        version: 1
        jobs:
          - name: d
            method: PUT
            url: {site.url}/echo
            data: {json.dumps(text)}
    """)
    assert (await run_job(job))["exit_code"] == 0
    [request] = seen_for(site, "PUT", "/echo")
    assert request["body"] == text.encode("utf-8")
    assert request["headers"]["Content-Type"].startswith("text/plain")
    assert int(request["headers"]["Content-Length"]) == len(text.encode("utf-8"))


async def test_form_body_is_urlencoded(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: f
            method: POST
            url: {site.url}/echo
            form: {{user: "a b", tag: [x, "y&z"], flag: true, n: 3}}
    """)
    assert (await run_job(job))["exit_code"] == 0
    [request] = seen_for(site, "POST", "/echo")
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["body"] == b"user=a+b&tag=x&tag=y%26z&flag=true&n=3"
    assert parse_qsl(request["body"].decode()) == [
        ("user", "a b"),
        ("tag", "x"),
        ("tag", "y&z"),
        ("flag", "true"),
        ("n", "3"),
    ]


async def test_job_content_type_overrides_the_body_default(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: d
            method: POST
            url: {site.url}/echo
            headers: {{content-type: application/vnd.api+json}}
            data: '{{"a": 1}}'
    """)
    assert (await run_job(job))["exit_code"] == 0
    [request] = seen_for(site, "POST", "/echo")
    assert request["body"] == b'{"a": 1}'
    assert request["headers"]["Content-Type"] == "application/vnd.api+json"


async def test_get_sends_no_body(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: g
            url: {site.url}/echo
    """)
    assert (await run_job(job))["exit_code"] == 0
    [request] = seen_for(site, "GET", "/echo")
    assert request["body"] == b""
    assert "Content-Type" not in request["headers"]


async def test_params_are_added_to_the_query_in_the_url(aiohttp_server, write_job, tmp_path):
    raw_paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        return web.json_response([[k, v] for k, v in request.query.items()])

    app = web.Application()
    app.router.add_get("/q", record)
    server = await aiohttp_server(app)
    base = str(server.make_url("/q"))
    job = write_job(f"""
        version: 1
        defaults:
          params: {{key1: default, keep: kept}}
        jobs:
          - name: q
            url: "{base}?x=1&sp=a%20b"
            params: {{key1: value1, tag: [a, b], q: "hello world&more", n: 7, flag: true}}
            save: json
    """)
    assert (await run_job(job))["exit_code"] == 0
    # The URL's own query first, then the params; a list repeats its key in one request; a
    # job's value replaces the default's for the same key, the rest of the defaults stay.
    query = "x=1&sp=a%20b&keep=kept&key1=value1&tag=a&tag=b&q=hello+world%26more&n=7&flag=true"
    assert raw_paths == ["/q?" + query]
    out = tmp_path / "out" / "job"
    [record_line] = read_manifest(out)
    assert json.loads((out / record_line["path"]).read_bytes()) == [
        ["x", "1"],
        ["sp", "a b"],
        ["keep", "kept"],
        ["key1", "value1"],
        ["tag", "a"],
        ["tag", "b"],
        ["q", "hello world&more"],
        ["n", "7"],
        ["flag", "true"],
    ]
    # The manifest's url is the URL with params: exactly what the server was asked for.
    assert record_line["url"] == f"{base}?{query}"


async def test_headers_from_defaults_and_job_both_arrive(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults:
          headers: {{User-Agent: "example-bot/1.0", X-Default: d, X-Both: from-default}}
        jobs:
          - name: h
            url: {site.url}/echo
            headers: {{X-Job: j, x-both: from-job, Accept: application/json}}
          - name: plain
            url: {site.url}/echo?plain=1
            headers: {{X-Other: o}}
    """)
    assert (await run_job(job))["exit_code"] == 0
    [first] = [r for r in seen_for(site, "GET", "/echo") if not r["query"]]
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert headers["user-agent"] == "example-bot/1.0"
    assert headers["x-default"] == "d"
    assert headers["x-job"] == "j"
    assert headers["x-both"] == "from-job"  # the job's value replaces the default's
    assert headers["accept"] == "application/json"
    [second] = [r for r in seen_for(site, "GET", "/echo") if r["query"] == "plain=1"]
    headers = {k.lower(): v for k, v in second["headers"].items()}
    assert headers["x-other"] == "o"
    assert headers["x-both"] == "from-default"
    assert "x-job" not in headers


# --- timeouts ------------------------------------------------------------------------------


@pytest.fixture
async def stall_site(aiohttp_server: Any) -> AsyncIterator[str]:
    """/stall sends headers and a little of the body, then stalls; /late answers after
    ?delay= seconds. Stalls end when the test does, so the server shuts down at once."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 100)
        try:
            await asyncio.wait_for(release.wait(), 5)
            await response.write(b"y" * 900)
        except (ConnectionError, TimeoutError):
            pass
        return response

    async def late(request: web.Request) -> web.Response:
        delay = float(request.query.get("delay", "0.5"))
        try:
            await asyncio.wait_for(release.wait(), delay)
        except TimeoutError:
            pass
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/stall", stall)
    app.router.add_get("/late", late)
    server = await aiohttp_server(app)
    yield str(server.make_url("")).rstrip("/")
    release.set()


def full_backlog_port() -> tuple[int, list[socket.socket]]:
    """A listening port whose accept queue is full: the kernel drops new SYNs, so a
    connection attempt hangs in the TCP handshake (nothing ever answers it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = [listener]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(filler)
    return port, held


async def test_total_timeout_against_a_slow_handler(stall_site, site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: slow
            url: {stall_site}/late?delay=3
            timeout: {{total: 0.3}}
          - name: fine
            url: {site.url}/json
            timeout: {{total: 0.3}}
    """)
    started = time.monotonic()
    summary = await run_job(job)
    assert time.monotonic() - started < 2.5
    assert summary["exit_code"] == 1
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["slow"]["error"]["kind"] == "timeout"
    assert records["slow"]["status"] is None
    assert records["slow"]["path"] is None
    assert 250 <= records["slow"]["elapsed_ms"] < 2500
    assert records["fine"]["ok"] is True


async def test_sock_read_timeout_on_a_body_that_stalls(stall_site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: stall
            url: {stall_site}/stall
            timeout: {{total: 10, sock_read: 0.3}}
          - name: fine
            url: {stall_site}/late?delay=0.05
            timeout: {{total: 10, sock_read: 0.3}}
    """)
    started = time.monotonic()
    summary = await run_job(job)
    assert time.monotonic() - started < 3
    assert summary["exit_code"] == 1
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["stall"]["error"]["kind"] == "timeout"
    assert records["stall"]["ok"] is False
    assert records["stall"]["path"] is None  # no partial file
    assert records["fine"]["ok"] is True
    assert list((tmp_path / "out" / "job" / "stall").glob("*")) == []


async def test_sock_read_from_defaults_survives_a_job_timeout(stall_site, write_job, tmp_path):
    # Merged field by field: the job sets total only, the default's sock_read still applies.
    job = write_job(f"""
        version: 1
        defaults:
          retries: 0
          timeout: {{total: 10, sock_read: 0.3}}
        jobs:
          - name: stall
            url: {stall_site}/stall
            timeout: {{total: 20}}
    """)
    started = time.monotonic()
    assert (await run_job(job))["exit_code"] == 1
    assert time.monotonic() - started < 3
    [record] = read_manifest(tmp_path / "out" / "job")
    assert record["error"]["kind"] == "timeout"


@pytest.mark.parametrize("field", ["sock_connect", "connect"])
async def test_connect_timeouts_on_a_handshake_that_hangs(field, site, write_job, tmp_path):
    port, held = full_backlog_port()
    try:
        job = write_job(f"""
            version: 1
            defaults:
              retries: 0
              timeout: {{total: 10, {field}: 0.3}}
            jobs:
              - name: hang
                url: http://127.0.0.1:{port}/
              - name: fine
                url: {site.url}/json
        """)
        started = time.monotonic()
        summary = await run_job(job)
        assert time.monotonic() - started < 3
    finally:
        for sock in held:
            sock.close()
    assert summary["exit_code"] == 1
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["hang"]["error"]["kind"] == "timeout"
    assert records["hang"]["status"] is None
    assert records["fine"]["ok"] is True


@pytest.mark.parametrize("off", ["null", "0"])
async def test_null_or_zero_turns_a_timeout_off(off, stall_site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults:
          retries: 0
          timeout: {{total: 0.2, sock_read: 0.2}}
        jobs:
          - name: slow
            url: {stall_site}/late?delay=0.6
            timeout: {{total: {off}, sock_read: {off}}}
          - name: still-limited
            url: {stall_site}/late?delay=0.6&limited=1
    """)
    summary = await run_job(job)
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["slow"]["ok"] is True, records["slow"]["error"]
    assert records["slow"]["elapsed_ms"] >= 550
    # The other job keeps the default's limits.
    assert records["still-limited"]["error"]["kind"] == "timeout"
    assert summary["exit_code"] == 1


async def test_scalar_timeout_is_total(stall_site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: slow
            url: {stall_site}/late?delay=2
            timeout: 0.3
    """)
    assert (await run_job(job))["exit_code"] == 1
    [record] = read_manifest(tmp_path / "out" / "job")
    assert record["error"]["kind"] == "timeout"
    assert record["elapsed_ms"] < 1500


async def test_waiting_in_the_queue_does_not_count_against_a_timeout(site, write_job, tmp_path):
    # Concurrency 1: the eighth request waits ~1.75 s for its turn, far beyond its 0.8 s
    # timeout, and must still succeed: the clock starts when the request is sent.
    urls = ", ".join(f'"{site.url}/slow?delay=0.25&i={i}"' for i in range(8))
    job = write_job(f"""
        version: 1
        concurrency: 1
        defaults: {{retries: 0, timeout: {{total: 0.8}}}}
        jobs:
          - name: queue
            urls: [{urls}]
    """)
    started = time.monotonic()
    summary = await run_job(job)
    duration = time.monotonic() - started
    records = read_manifest(tmp_path / "out" / "job")
    assert [r["error"] for r in records if not r["ok"]] == []
    assert len(records) == 8
    assert summary["exit_code"] == 0
    assert duration >= 8 * 0.25
    assert site.seen.peak == 1


# --- the manifest line (C8) ----------------------------------------------------------------

KEYS = {
    "run",
    "job",
    "method",
    "url",
    "final_url",
    "status",
    "ok",
    "path",
    "bytes",
    "sha256",
    "content_type",
    "charset",
    "elapsed_ms",
    "attempts",
    "error",
    "fetched_at",
}


def check_types(record: dict[str, Any], out: Path) -> None:
    assert set(record) >= KEYS, KEYS - set(record)
    assert isinstance(record["run"], str)
    assert record["run"]
    assert isinstance(record["job"], str)
    assert record["method"] in METHODS
    assert isinstance(record["url"], str)
    assert record["final_url"] is None or isinstance(record["final_url"], str)
    assert record["status"] is None or type(record["status"]) is int
    assert type(record["ok"]) is bool
    assert type(record["attempts"]) is int
    assert record["attempts"] >= 1
    assert isinstance(record["elapsed_ms"], int | float)
    assert not isinstance(record["elapsed_ms"], bool)
    assert record["elapsed_ms"] >= 0
    assert record["content_type"] is None or isinstance(record["content_type"], str)
    assert record["charset"] is None or isinstance(record["charset"], str)
    fetched = datetime.fromisoformat(record["fetched_at"])
    assert fetched.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - fetched) < timedelta(minutes=1)
    if record["ok"]:
        assert record["error"] is None
    else:
        assert isinstance(record["error"], dict)
        assert set(record["error"]) == {"kind", "message"}
        assert isinstance(record["error"]["kind"], str)
        assert isinstance(record["error"]["message"], str)
        assert record["error"]["message"]
    if record["path"] is None or record["path"].endswith(".jsonl"):
        # Nothing saved for this request alone (HEAD, a failure, a jsonl line).
        assert record["sha256"] is None
        assert record["bytes"] in (None, 0)
        if record["path"] is not None:
            assert (out / record["path"]).is_file()
    else:
        assert isinstance(record["path"], str)
        assert not Path(record["path"]).is_absolute()
        saved = out / record["path"]
        assert saved.is_file()
        data = saved.read_bytes()
        assert type(record["bytes"]) is int
        assert record["bytes"] == len(data)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()


async def test_manifest_lines_on_success_and_failure(site, write_job, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: api
            url: {site.url}/json
            save: json
          - name: moved
            url: {site.url}/redirect/2
          - name: page
            url: {site.url}/text?words=caf%C3%A9&declare=utf-8
          - name: raw
            url: {site.url}/bytes?size=3000
            save: bytes
          - name: head
            method: HEAD
            url: {site.url}/json
          - name: refused
            url: http://127.0.0.1:{refused_port}/nothing
          - name: missing
            url: {site.url}/status/404
          - name: lines
            url: {site.url}/json
            save: jsonl
    """)
    before = datetime.now(UTC) - timedelta(seconds=1)
    summary = await run_job(job)
    out = tmp_path / "out" / "job"
    assert summary["exit_code"] == 1
    records = read_manifest(out)
    assert len(records) == 8
    for record in records:
        check_types(record, out)
        assert datetime.fromisoformat(record["fetched_at"]) >= before
    assert len({r["run"] for r in records}) == 1
    assert records[0]["run"] == summary["run"]
    r = by_job(records)

    assert r["api"]["ok"] is True
    assert r["api"]["status"] == 200
    assert r["api"]["method"] == "GET"
    assert r["api"]["url"] == f"{site.url}/json"
    assert r["api"]["final_url"] == f"{site.url}/json"
    assert r["api"]["content_type"].startswith("application/json")
    assert r["api"]["path"].startswith("api/")
    assert json.loads((out / r["api"]["path"]).read_text("utf-8"))["text"] == "héllo ☃"

    assert r["moved"]["url"] == f"{site.url}/redirect/2"
    assert r["moved"]["final_url"] == f"{site.url}/redirect/0"
    assert r["moved"]["ok"] is True
    assert (out / r["moved"]["path"]).read_text("utf-8") == "landed"

    assert r["page"]["charset"] == "utf-8"
    assert (out / r["page"]["path"]).read_text("utf-8") == "café"

    assert r["raw"]["bytes"] == 3000
    assert (out / r["raw"]["path"]).read_bytes() == bytes(i % 251 for i in range(3000))

    assert r["head"]["path"] is None
    assert r["head"]["bytes"] == 0
    assert r["head"]["status"] == 200

    assert r["refused"]["ok"] is False
    assert r["refused"]["status"] is None
    assert r["refused"]["final_url"] is None
    assert r["refused"]["path"] is None
    assert r["refused"]["bytes"] is None
    assert r["refused"]["error"]["kind"] == "connect"

    assert r["missing"]["status"] == 404
    assert r["missing"]["error"]["kind"] == "http"
    assert r["missing"]["path"] is None

    # jsonl: no per-request file, so bytes and sha256 are null (C8).
    assert r["lines"]["ok"] is True
    assert r["lines"]["bytes"] is None
    assert r["lines"]["sha256"] is None
    [line] = (out / "lines.jsonl").read_text("utf-8").splitlines()
    assert json.loads(line) == {
        "url": f"{site.url}/json",
        "status": 200,
        "data": {"ok": True, "items": [1, 2, 3], "text": "héllo ☃"},
    }


@pytest.mark.parametrize("coding", [None, "gzip"])
async def test_manifest_sha256_matches_a_large_spilled_body(
    coding, aiohttp_server, write_job, tmp_path
):
    # Larger than what is kept in memory (8 MiB): streamed to a temp file, then moved in.
    body = bytes(range(256)) * (9 * 4096 + 7)
    wire = gzip.compress(body, compresslevel=1) if coding else body

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if coding:
            response.headers["Content-Encoding"] = coding
        await response.prepare(request)  # chunked: no Content-Length
        for start in range(0, len(wire), 1 << 20):
            await response.write(wire[start : start + (1 << 20)])
        return response

    app = web.Application()
    app.router.add_get("/big", big)
    server = await aiohttp_server(app)
    job = write_job(f"""
        version: 1
        jobs:
          - name: big
            url: {server.make_url("/big")}
            save: bytes
    """)
    assert (await run_job(job))["exit_code"] == 0
    out = tmp_path / "out" / "job"
    [record] = read_manifest(out)
    check_types(record, out)
    assert record["bytes"] == len(body)
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert list((out / ".crawler" / "tmp").glob("*")) == []


# --- Content-Encoding ----------------------------------------------------------------------

PLAIN = ("Grüße, " + "the quick brown fox jumps over the lazy dog. " * 300).encode()


def encoded(kind: str) -> tuple[bytes, str]:
    """The body PLAIN in one Content-Encoding, and the header value."""
    if kind == "gzip":
        return gzip.compress(PLAIN), "gzip"
    if kind == "x-gzip":
        return gzip.compress(PLAIN), "x-gzip"
    if kind == "gzip-members":  # two gzip members back to back (RFC 1952 2.2)
        half = len(PLAIN) // 2
        return gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:]), "gzip"
    if kind == "deflate":  # zlib-wrapped, as RFC 9110 means it
        return zlib.compress(PLAIN), "deflate"
    if kind == "raw-deflate":  # what some servers send instead
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(PLAIN) + packer.flush(), "deflate"
    if kind == "br":
        return brotli.compress(PLAIN), "br"
    if kind == "upper-case":
        return gzip.compress(PLAIN), "GZIP"
    raise ValueError(kind)


ENCODINGS = ["gzip", "x-gzip", "gzip-members", "deflate", "raw-deflate", "br", "upper-case"]


@pytest.fixture
async def encoding_site(aiohttp_server: Any) -> str:
    async def fixed(request: web.Request) -> web.Response:
        body, coding = encoded(request.match_info["kind"])
        return web.Response(
            body=body,
            headers={"Content-Encoding": coding, "Content-Type": "text/plain; charset=utf-8"},
        )

    async def streamed(request: web.Request) -> web.StreamResponse:
        # Chunked, in small pieces, so the decoder sees the stream split anywhere.
        body, coding = encoded(request.match_info["kind"])
        response = web.StreamResponse(
            headers={"Content-Encoding": coding, "Content-Type": "text/plain; charset=utf-8"}
        )
        await response.prepare(request)
        for start in range(0, len(body), 37):
            await response.write(body[start : start + 37])
        return response

    async def unknown(request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\x01opaque", headers={"Content-Encoding": "x-custom"})

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/fixed/{kind}", fixed)
    app.router.add_get("/streamed/{kind}", streamed)
    app.router.add_get("/unknown", unknown)
    app.router.add_get("/empty", empty)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_content_encodings_are_undone(encoding_site, write_job, tmp_path):
    urls = [f"{encoding_site}/{how}/{kind}" for how in ("fixed", "streamed") for kind in ENCODINGS]
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: raw
            urls: [{", ".join(repr(u) for u in urls)}]
            save: bytes
          - name: text
            url: {encoding_site}/streamed/gzip
    """)
    summary = await run_job(job)
    out = tmp_path / "out" / "job"
    records = read_manifest(out)
    assert [(r["url"], r["error"]) for r in records if not r["ok"]] == []
    assert summary["exit_code"] == 0
    assert len(records) == len(urls) + 1
    for record in records:
        if record["job"] == "raw":
            assert (out / record["path"]).read_bytes() == PLAIN, record["url"]
            assert record["bytes"] == len(PLAIN)
            assert record["sha256"] == hashlib.sha256(PLAIN).hexdigest()
        else:
            assert (out / record["path"]).read_text("utf-8") == PLAIN.decode()


async def test_accept_encoding_offers_what_is_undone(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: default
            url: {site.url}/echo?n=1
          - name: own
            url: {site.url}/echo?n=2
            headers: {{Accept-Encoding: identity}}
    """)
    assert (await run_job(job))["exit_code"] == 0
    sent = {r["query"]: r["headers"]["Accept-Encoding"] for r in seen_for(site, "GET", "/echo")}
    assert sent == {"n=1": "gzip, deflate, br", "n=2": "identity"}


async def test_unknown_or_empty_encoding_is_kept_as_sent(encoding_site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0, save: bytes}}
        jobs:
          - name: unknown
            url: {encoding_site}/unknown
          - name: empty
            url: {encoding_site}/empty
    """)
    assert (await run_job(job))["exit_code"] == 0
    out = tmp_path / "out" / "job"
    records = by_job(read_manifest(out))
    assert (out / records["unknown"]["path"]).read_bytes() == b"\x00\x01opaque"
    assert records["empty"]["bytes"] == 0


# --- proxies -------------------------------------------------------------------------------


@pytest.fixture
async def proxy(aiohttp_server: Any) -> tuple[str, list[str]]:
    """A forward proxy that answers itself, noting the absolute-form targets it was sent."""
    targets: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        targets.append(request.raw_path)
        return web.Response(text="via proxy")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), targets


async def test_job_proxy_carries_the_request(proxy, site, write_job, tmp_path):
    proxy_url, targets = proxy
    job = write_job(f"""
        version: 1
        jobs:
          - name: proxied
            url: {site.url}/text?words=direct
            proxy: {proxy_url}
          - name: direct
            url: {site.url}/text?words=direct
            headers: {{X-Direct: "1"}}
    """)
    assert (await run_job(job))["exit_code"] == 0
    out = tmp_path / "out" / "job"
    records = by_job(read_manifest(out))
    assert (out / records["proxied"]["path"]).read_text() == "via proxy"
    assert (out / records["direct"]["path"]).read_text() == "direct"
    assert targets == [f"{site.url}/text?words=direct"]
    assert len(site.seen.requests) == 1


async def test_proxy_from_the_environment_follows_its_changes(
    proxy, site, write_job, tmp_path, monkeypatch
):
    proxy_url, targets = proxy
    job = write_job(f"""
        version: 1
        jobs:
          - name: env
            url: {site.url}/text?words=direct
    """)
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert (await run_job(job, out=tmp_path / "a"))["exit_code"] == 0
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    assert (await run_job(job, out=tmp_path / "b"))["exit_code"] == 0
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert (await run_job(job, out=tmp_path / "c"))["exit_code"] == 0
    texts = {}
    for name in "abc":
        [record] = read_manifest(tmp_path / name)
        texts[name] = (tmp_path / name / record["path"]).read_text()
    assert texts == {"a": "direct", "b": "via proxy", "c": "direct"}
    assert len(targets) == 1
