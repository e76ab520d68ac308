"""save: warc at the edges: redirects that change method or origin, too many redirects, a body
that is refused or cut short, a compressed body large enough to spill to disk. Each run is the
installed command against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from ..conftest import crawler_cli, read_manifest
from .readers import Rec, read_fastwarc, read_warcio, record_at

AUTH = "Bearer sekrit-redirect-AUTH"
COOKIE = "sekrit-redirect-COOKIE"


async def run(tmp_path: Path, jobs: list[dict[str, Any]], code: int = 0) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"version": 1, "defaults": {"retries": 0}, "jobs": jobs}))
    out = tmp_path / "out"
    done = await crawler_cli("run", str(job), "-o", str(out), timeout=60)
    assert done.code == code, done.stderr
    return out


def warc_records(out: Path, job: str) -> list[Rec]:
    (path,) = sorted((out / job).iterdir())
    assert all(r.block_ok and r.payload_ok for r in read_fastwarc(path))
    return read_warcio(path)


def final_record(out: Path, line: dict[str, Any]) -> Rec:
    return record_at(out / line["path"], line["warc_offset"], line["warc_length"])


async def test_credentials_are_not_sent_to_another_origin_on_redirect(aiohttp_server, tmp_path):
    """As aiohttp does for every other save mode (and browsers, curl, requests): a redirect to
    another origin drops Authorization, Cookie and Proxy-Authorization; the same origin keeps
    them."""
    seen: dict[str, dict[str, str]] = {}

    async def landing(request: web.Request) -> web.Response:
        seen[request.path] = dict(request.headers)
        return web.Response(text="landed")

    other_app = web.Application()
    other_app.router.add_get("/{name}", landing)
    other = await aiohttp_server(other_app)

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(other.make_url(f"/{request.match_info['name']}")))

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing-home")

    first_app = web.Application()
    first_app.router.add_get("/away/{name}", away)
    first_app.router.add_get("/home", home)
    first_app.router.add_get("/landing-home", landing)
    first = await aiohttp_server(first_app)

    secret = {"headers": {"Authorization": AUTH}, "cookies": {"sid": COOKIE}}
    out = await run(
        tmp_path,
        [
            {"name": "w", "url": str(first.make_url("/away/warc")), "save": "warc", **secret},
            {"name": "b", "url": str(first.make_url("/away/bytes")), "save": "bytes", **secret},
            {"name": "h", "url": str(first.make_url("/home")), "save": "warc", **secret},
        ],
    )
    assert "Authorization" not in seen["/bytes"] and "Cookie" not in seen["/bytes"]
    assert "Authorization" not in seen["/warc"], "credentials followed a redirect to elsewhere"
    assert "Cookie" not in seen["/warc"]
    assert seen["/landing-home"]["Authorization"] == AUTH  # the same origin: kept
    assert COOKIE in seen["/landing-home"]["Cookie"]
    first_hop, second_hop = [r for r in warc_records(out, "w") if r.type == "request"]
    assert first_hop.http("Authorization") and first_hop.http("Cookie")  # masked, but sent
    assert second_hop.http("Authorization") == [] and second_hop.http("Cookie") == []


async def test_post_redirects_change_method_as_rfc_9110_says(aiohttp_server, tmp_path):
    bodies: dict[str, tuple[str, bytes]] = {}

    async def record(request: web.Request) -> web.Response:
        bodies[request.path] = (request.method, await request.read())
        code = {"/see-other": 303, "/temporary": 307}.get(request.path)
        if code is not None:
            raise _redirect(code, "/target" + request.path)
        return web.Response(text=f"{request.method} done")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    post = {"method": "POST", "json": {"form": "data"}, "save": "warc"}
    out = await run(
        tmp_path,
        [
            {"name": "s", "url": str(server.make_url("/see-other")), **post},
            {"name": "t", "url": str(server.make_url("/temporary")), **post},
        ],
    )
    assert bodies["/target/see-other"] == ("GET", b"")
    assert bodies["/target/temporary"] == ("POST", b'{"form":"data"}')
    requests = [r for r in warc_records(out, "s") if r.type == "request"]
    assert [r.status_line for r in requests] == [
        "POST /see-other HTTP/1.1",
        "GET /target/see-other HTTP/1.1",
    ]
    assert [r.payload for r in requests] == [b'{"form":"data"}', b""]
    requests = [r for r in warc_records(out, "t") if r.type == "request"]
    assert [r.status_line for r in requests] == [
        "POST /temporary HTTP/1.1",
        "POST /target/temporary HTTP/1.1",
    ]
    assert [r.payload for r in requests] == [b'{"form":"data"}'] * 2


def _redirect(code: int, location: str) -> web.HTTPException:
    kind = {303: web.HTTPSeeOther, 307: web.HTTPTemporaryRedirect}[code]
    return kind(location)


async def test_too_many_redirects_archives_the_hops_made(aiohttp_server, tmp_path):
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/hop/{n + 1}")

    app = web.Application()
    app.router.add_get("/hop/{n}", hop)
    server = await aiohttp_server(app)
    out = await run(
        tmp_path,
        [{"name": "r", "url": str(server.make_url("/hop/0")), "save": "warc", "max_redirects": 2}],
        code=1,
    )
    (line,) = read_manifest(out)
    assert line["error"]["kind"] == "redirects"
    responses = [r for r in warc_records(out, "r") if r.type == "response"]
    assert [r.uri.rsplit("/", 1)[1] for r in responses] == ["0", "1", "2"]
    final = final_record(out, line)
    assert final.uri == line["final_url"] == str(server.make_url("/hop/2"))


async def test_a_body_not_read_whole_is_marked_truncated(aiohttp_server, tmp_path):
    """A response whose body was refused (max_bytes) or cut short is still archived (its
    status and headers arrived), but never as if its payload were whole: the record says
    WARC-Truncated, as Heritrix and wget mark theirs."""

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="application/octet-stream")

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 900
        await response.prepare(request)
        await response.write(b"only this much")
        await asyncio.sleep(0.05)
        request.transport.close()  # the connection drops mid-body
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 900
        await response.prepare(request)
        await response.write(b"then nothing more")
        await asyncio.sleep(5)  # past the job's sock_read timeout
        return response

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/cut", cut)
    app.router.add_get("/stall", stall)
    server = await aiohttp_server(app)
    out = await run(
        tmp_path,
        [
            {
                "name": "t",
                "urls": [str(server.make_url(p)) for p in ("/big", "/cut", "/stall")],
                "save": "warc",
                "max_bytes": 1000,
                "timeout": {"total": 30, "sock_read": 0.5},
            }
        ],
        code=1,
    )
    lines = {line["url"].rsplit("/", 1)[1]: line for line in read_manifest(out)}
    assert lines["big"]["error"]["kind"] == "too_large"
    assert lines["cut"]["error"]["kind"] == "protocol"
    assert lines["stall"]["error"]["kind"] == "timeout"
    for name, reason in (("big", "length"), ("cut", "disconnect"), ("stall", "time")):
        record = final_record(out, lines[name])
        assert record.headers.get("WARC-Truncated") == reason, (name, record.headers)
        assert lines[name]["bytes"] == len(record.payload)
    # The request record is there too; every record reads and verifies.
    assert [r.type for r in warc_records(out, "t")].count("request") == 3


async def test_a_large_compressed_body_is_stored_compressed(aiohttp_server, tmp_path):
    """A gzip body that decodes past the size kept in memory (8 MiB) is spilled to disk while
    it is read; the archive must still store the bytes the server sent."""
    plain = b"a line of a large, very compressible body\n" * 250_000  # 10.5 MB
    sent = gzip.compress(plain, mtime=0)

    async def large(request: web.Request) -> web.Response:
        return web.Response(
            body=sent, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
        )

    app = web.Application()
    app.router.add_get("/large", large)
    server = await aiohttp_server(app)
    url = str(server.make_url("/large"))
    out = await run(
        tmp_path,
        [
            {"name": "raw", "url": url, "save": "warc"},
            {"name": "dec", "url": url, "save": "warc", "warc_decompress": True},
        ],
    )
    lines = {line["job"]: line for line in read_manifest(out)}
    raw = final_record(out, lines["raw"])
    assert raw.http("Content-Encoding") == ["gzip"]
    assert raw.http("Content-Length") == [str(len(sent))]
    assert len(raw.payload) == len(sent) and raw.payload == sent
    assert lines["raw"]["sha256"] == hashlib.sha256(sent).hexdigest()
    dec = final_record(out, lines["dec"])
    assert dec.http("Content-Encoding") == []
    assert dec.http("Content-Length") == [str(len(plain))]
    assert dec.payload == plain
    assert lines["dec"]["sha256"] == hashlib.sha256(plain).hexdigest()
    assert not list((out / ".crawler").rglob("*.part"))


async def test_large_and_small_bodies_mixed_keep_their_offsets(aiohttp_server, tmp_path):
    """Large exchanges are built and written in a thread, small ones on the event loop when
    that thread is idle; mixed and concurrent, each still lands whole where its manifest line
    says. Incompressible payloads (random bytes, an image type) are stored in their members
    as they are, over several deflate stored blocks; text is deflated."""
    import random

    def body(kind: str, n: int) -> tuple[bytes, str]:
        rng = random.Random(n)
        if kind == "random":
            return rng.randbytes(300_000 + n), "application/octet-stream"
        if kind == "image":
            return (b"not really a jpeg, but typed as one " * 3000)[: 100_000 + n], "image/jpeg"
        if kind == "text":
            words = [rng.choice(["crawl", "archive", "record", "warc"]) for _ in range(90_000)]
            return " ".join(words).encode(), "text/plain"
        return f"small {n}".encode() * 20, "text/plain"

    async def serve(request: web.Request) -> web.Response:
        data, ctype = body(request.match_info["kind"], int(request.match_info["n"]))
        return web.Response(body=data, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/{kind}/{n}", serve)
    server = await aiohttp_server(app)
    paths = [f"/{kind}/{n}" for n in range(6) for kind in ("random", "small", "image", "text")]
    paths += [f"/small/{n}" for n in range(100, 160)]
    out = await run(
        tmp_path,
        [
            {
                "name": "mix",
                "urls": [str(server.make_url(p)) for p in paths],
                "save": "warc",
            }
        ],
    )
    lines = read_manifest(out)
    assert len(lines) == len(paths)
    for line in lines:
        _, kind, n = line["url"].rsplit("/", 2)
        expected, _ = body(kind, int(n))
        record = final_record(out, line)
        assert record.uri == line["url"]
        assert record.payload == expected, line["url"]
        assert line["sha256"] == hashlib.sha256(expected).hexdigest()
    records = warc_records(out, "mix")  # the whole file, digests checked by both readers
    assert sum(r.type == "response" for r in records) == len(paths)
    (path,) = sorted((out / "mix").iterdir())
    raw_total = sum(len(body(k, int(n))[0]) for k, n in (p.split("/")[1:] for p in paths))
    text_total = sum(len(body("text", n)[0]) for n in range(6))
    # Text deflated (a few times smaller), the rest stored: the file is smaller than the
    # payloads by about what the text saved.
    assert path.stat().st_size < raw_total - text_total // 2


async def test_a_redirect_body_is_held_to_max_bytes(aiohttp_server, tmp_path):
    """A warc job reads each redirect's body to archive it: a chunked one (no Content-Length
    to refuse it by) is cut at max_bytes too, not read to its end into memory."""
    sent: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=302, headers={"Location": "/final"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(200):  # 20 MB, unless the client stops reading first
                await response.write(b"x" * 100_000)
                sent.append(1)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def final(request: web.Request) -> web.Response:
        return web.Response(text="final")

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/final", final)
    server = await aiohttp_server(app)
    url = str(server.make_url("/endless"))
    out = await run(
        tmp_path, [{"name": "r", "url": url, "save": "warc", "max_bytes": 50_000}], code=1
    )
    (line,) = read_manifest(out)
    assert line["error"]["kind"] == "too_large"
    record = final_record(out, line)
    assert record.uri == url and record.headers["WARC-Truncated"] == "length"
    assert len(sent) < 200
