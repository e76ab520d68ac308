"""Bad responses fail one request with the right error kind, and every other request of the
run goes on (C8 kinds, C12). Malformed HTTP comes from raw asyncio servers."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
from aiohttp import web

from .conftest import read_manifest, run_job
from .servers import start_raw_server

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


def reset(writer: Writer) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def send(writer: Writer, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def malformed_status_line(reader: Reader, writer: Writer) -> None:
    await send(writer, b"HTTP/1.1 two-hundred OK\r\nContent-Length: 2\r\n\r\nok")


async def not_http_at_all(reader: Reader, writer: Writer) -> None:
    await send(writer, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


async def malformed_header(reader: Reader, writer: Writer) -> None:
    await send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nthis line has no colon\r\n\r\nok")


async def body_shorter_than_length(reader: Reader, writer: Writer) -> None:
    await send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this much")


async def reset_mid_body(reader: Reader, writer: Writer) -> None:
    await send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 2000)
    await asyncio.sleep(0.05)
    reset(writer)


async def reset_mid_chunked_body(reader: Reader, writer: Writer) -> None:
    await send(
        writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
    )
    await asyncio.sleep(0.05)
    reset(writer)


async def bad_chunk_size(reader: Reader, writer: Writer) -> None:
    await send(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    await asyncio.sleep(0.05)  # the status arrives on its own, then the broken body
    await send(writer, b"zz\r\nhello\r\n0\r\n\r\n")


async def send_encoded(writer: Writer, coding: str, body: bytes) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {len(body)}\r\n\r\n"
    await send(writer, head.encode() + body)


PAYLOAD = bytes(range(256)) * 400


async def broken_gzip(reader: Reader, writer: Writer) -> None:
    await send_encoded(writer, "gzip", b"this is not gzip data, whatever the header says" * 4)


async def gzip_cut_short(reader: Reader, writer: Writer) -> None:
    # Content-Length matches what is sent: only the gzip stream itself shows it is cut.
    whole = gzip.compress(PAYLOAD)
    await send_encoded(writer, "gzip", whole[: len(whole) // 2])


async def gzip_bad_checksum(reader: Reader, writer: Writer) -> None:
    whole = bytearray(gzip.compress(PAYLOAD))
    whole[-8] ^= 0xFF  # the CRC-32 of the trailer
    await send_encoded(writer, "gzip", bytes(whole))


async def deflate_cut_short(reader: Reader, writer: Writer) -> None:
    whole = zlib.compress(PAYLOAD)
    await send_encoded(writer, "deflate", whole[: len(whole) // 2])


async def brotli_cut_short(reader: Reader, writer: Writer) -> None:
    whole = brotli.compress(PAYLOAD)
    await send_encoded(writer, "br", whole[: len(whole) // 2])


async def brotli_garbage(reader: Reader, writer: Writer) -> None:
    await send_encoded(writer, "br", b"\xff\xfe this is not brotli" * 8)


async def redirect_to_ftp(reader: Reader, writer: Writer) -> None:
    await send(
        writer, b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/file\r\nContent-Length: 0\r\n\r\n"
    )


async def close_before_response(reader: Reader, writer: Writer) -> None:
    return  # the request was read; the connection closes without a byte of response


async def reset_before_response(reader: Reader, writer: Writer) -> None:
    reset(writer)


RAW: dict[str, Callable[[Reader, Writer], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        malformed_status_line,
        not_http_at_all,
        malformed_header,
        body_shorter_than_length,
        reset_mid_body,
        reset_mid_chunked_body,
        bad_chunk_size,
        broken_gzip,
        gzip_cut_short,
        gzip_bad_checksum,
        deflate_cut_short,
        brotli_cut_short,
        brotli_garbage,
        redirect_to_ftp,
        close_before_response,
        reset_before_response,
    )
}


def refused_port() -> int:
    """A port nothing listens on: bound, then closed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def gzip_bomb(inflated: int) -> bytes:
    """About inflated/1000 bytes of gzip that inflate to ``inflated`` zero bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(120 << 20)


@dataclass
class Hosts:
    site: str
    extra: str
    raw: Callable[[str], Awaitable[str]]


@pytest.fixture
async def hosts(site: Any, aiohttp_server: Any, bomb: bytes) -> AsyncIterator[Hosts]:
    """The shared site, an app of oversized replies, and raw servers started on demand."""
    started: list[asyncio.Server] = []

    async def gzip_bomb_route(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
        )

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)  # no Content-Length: the size is known only at the end
        for _ in range(int(request.query.get("blocks", "8"))):
            await response.write(b"z" * 1000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/bomb", gzip_bomb_route)
    app.router.add_get("/chunked", chunked)
    server = await aiohttp_server(app)

    async def raw(name: str) -> str:
        srv, port = await start_raw_server(RAW[name])
        started.append(srv)
        return f"http://127.0.0.1:{port}/{name}"

    yield Hosts(site.url, str(server.make_url("")).rstrip("/"), raw)
    for srv in started:
        srv.close()
        await srv.wait_closed()


@dataclass(frozen=True)
class Case:
    id: str
    url: str  # "raw:<handler>", "site:/path", "extra:/path" or "refused:"
    kind: str
    status: int | None = None
    extra: str = ""  # more request keys, YAML flow style, for the failing job only

    async def resolve(self, hosts: Hosts) -> str:
        where, _, rest = self.url.partition(":")
        if where == "raw":
            return await hosts.raw(rest)
        if where == "refused":
            return f"http://127.0.0.1:{refused_port()}/"
        return (hosts.site if where == "site" else hosts.extra) + rest


CASES = [
    Case("refused", "refused:", "connect"),
    Case("closed-before-response", "raw:close_before_response", "connect"),
    Case("reset-before-response", "raw:reset_before_response", "connect"),
    Case("malformed-status-line", "raw:malformed_status_line", "protocol"),
    Case("not-http", "raw:not_http_at_all", "protocol"),
    Case("malformed-header", "raw:malformed_header", "protocol"),
    Case("content-length-beyond-body", "raw:body_shorter_than_length", "protocol", 200),
    Case("reset-mid-body", "raw:reset_mid_body", "protocol", 200),
    Case("reset-mid-chunked-body", "raw:reset_mid_chunked_body", "protocol", 200),
    Case("bad-chunk-size", "raw:bad_chunk_size", "protocol", 200),
    Case("broken-gzip", "raw:broken_gzip", "protocol", 200),
    Case("gzip-cut-short", "raw:gzip_cut_short", "protocol", 200),
    Case("gzip-bad-checksum", "raw:gzip_bad_checksum", "protocol", 200),
    Case("deflate-cut-short", "raw:deflate_cut_short", "protocol", 200),
    Case("brotli-cut-short", "raw:brotli_cut_short", "protocol", 200),
    Case("brotli-garbage", "raw:brotli_garbage", "protocol", 200),
    Case("redirect-loop", "site:/loop", "redirects", 302),
    Case("redirect-chain-too-long", "site:/redirect/4", "redirects", 302, "max_redirects: 3"),
    Case("redirect-to-ftp", "raw:redirect_to_ftp", "redirects"),
    Case("no-redirects-allowed", "site:/redirect/1", "redirects", 302, "max_redirects: 0"),
    Case("too-large-known-length", "site:/bytes?size=5000", "too_large", 200, "max_bytes: 4999"),
    Case("too-large-chunked", "extra:/chunked?blocks=8", "too_large", 200, "max_bytes: 7999"),
    Case("not-found", "site:/status/404", "http", 404),
    Case("gone", "site:/status/410", "http", 410),
    Case("server-error", "site:/status/500", "http", 500),
    Case("slow", "site:/slow?delay=2", "timeout", None, "timeout: {total: 0.2}"),
    Case("invalid-json", "site:/text?words=not-json", "invalid_json", 200, "save: json"),
]


def job_yaml(failing_url: str, case: Case, good: list[str]) -> str:
    extra = f", {case.extra}" if case.extra else ""
    lines = [
        "version: 1",
        # A bound on every request: a regression shows as a wrong kind, not a hang.
        "defaults: {retries: 0, timeout: {total: 10}}",
        "jobs:",
        f'  - {{name: bad, url: "{failing_url}"{extra}}}',
        f"  - name: good\n    urls: [{', '.join(repr(u) for u in good)}]",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_one_bad_request_fails_with_its_kind(case, hosts, write_job, tmp_path):
    url = await case.resolve(hosts)
    good = [f"{hosts.site}/json", f"{hosts.site}/text?words=fine", f"{hosts.site}/redirect/1"]
    job = write_job(job_yaml(url, case, good))
    started = time.monotonic()
    summary = await run_job(job)
    assert time.monotonic() - started < 5
    out = tmp_path / "out" / "job"
    records = read_manifest(out)
    [bad] = [r for r in records if r["job"] == "bad"]
    assert bad["ok"] is False
    assert bad["error"]["kind"] == case.kind, bad["error"]
    assert bad["error"]["message"]
    assert bad["status"] == case.status
    assert bad["attempts"] == 1
    if case.kind != "invalid_json":
        assert bad["path"] is None
        assert bad["sha256"] is None
        assert not (out / "bad").exists() or list((out / "bad").iterdir()) == []
    # Every other request of the run went on.
    others = [r for r in records if r["job"] == "good"]
    assert len(others) == len(good)
    assert all(r["ok"] for r in others), [r["error"] for r in others]
    assert summary["exit_code"] == 1
    assert summary["failed"] == 1
    assert summary["by_kind"] == {case.kind: 1}


async def test_redirect_chain_of_exactly_max_redirects_is_followed(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: three
            url: {site.url}/redirect/3
            max_redirects: 3
          - name: none-needed
            url: {site.url}/redirect/0
            max_redirects: 0
    """)
    summary = await run_job(job)
    records = {r["job"]: r for r in read_manifest(tmp_path / "out" / "job")}
    assert records["three"]["ok"] is True, records["three"]["error"]
    assert records["three"]["final_url"] == f"{site.url}/redirect/0"
    assert records["none-needed"]["ok"] is True
    assert summary["exit_code"] == 0
    assert site.seen.paths().count("/redirect/1") == 1


async def test_gzip_bomb_fails_fast_with_too_large(hosts, bomb, write_job, tmp_path):
    assert len(bomb) < 200_000  # on the wire; 120 MiB once inflated
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: bomb
            url: {hosts.extra}/bomb
            max_bytes: 1048576
            save: bytes
          - name: fine
            url: {hosts.site}/gzip
            max_bytes: 1048576
            save: json
    """)
    started = time.monotonic()
    summary = await run_job(job)
    assert time.monotonic() - started < 3
    records = {r["job"]: r for r in read_manifest(tmp_path / "out" / "job")}
    assert records["bomb"]["error"]["kind"] == "too_large"
    assert records["bomb"]["attempts"] == 1
    assert records["bomb"]["path"] is None
    assert records["fine"]["ok"] is True
    assert summary["exit_code"] == 1


async def test_body_of_exactly_max_bytes_is_accepted(hosts, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: known
            url: {hosts.site}/bytes?size=5000
            max_bytes: 5000
            save: bytes
          - name: chunked
            url: {hosts.extra}/chunked?blocks=8
            max_bytes: 8000
            save: bytes
    """)
    assert (await run_job(job))["exit_code"] == 0
    records = {r["job"]: r for r in read_manifest(tmp_path / "out" / "job")}
    assert records["known"]["bytes"] == 5000
    assert records["chunked"]["bytes"] == 8000


async def test_gzip_body_counts_inflated_bytes(hosts, write_job, tmp_path):
    # 2 KB of zeros gzip to a few dozen bytes; max_bytes applies after decompression.
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: small-wire
            url: {hosts.extra}/bomb
            max_bytes: 1000
            save: bytes
    """)
    assert (await run_job(job))["exit_code"] == 1
    [record] = read_manifest(tmp_path / "out" / "job")
    assert record["error"]["kind"] == "too_large"


async def test_every_bad_reply_in_one_run(hosts, write_job, tmp_path):
    """All of the above at once, concurrently, with good requests in between: each fails or
    succeeds on its own."""
    lines = ["version: 1", "concurrency: 8", "defaults: {retries: 0, timeout: {total: 10}}"]
    lines.append("jobs:")
    expected: dict[str, str | None] = {}
    for n, case in enumerate(CASES):
        url = await case.resolve(hosts)
        extra = f", {case.extra}" if case.extra else ""
        lines.append(f'  - {{name: bad-{n}, url: "{url}"{extra}}}')
        lines.append(f'  - {{name: good-{n}, url: "{hosts.site}/json?n={n}", save: json}}')
        expected[f"bad-{n}"] = case.kind
        expected[f"good-{n}"] = None
    job = write_job("\n".join(lines) + "\n")
    summary = await run_job(job)
    records = read_manifest(tmp_path / "out" / "job")
    got = {r["job"]: (r["error"] or {}).get("kind") for r in records}
    assert got == expected
    assert summary["exit_code"] == 1
    assert summary["ok"] == len(CASES)
    assert summary["failed"] == len(CASES)
