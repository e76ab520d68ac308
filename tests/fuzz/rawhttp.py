"""A raw HTTP/1.1 server on 127.0.0.1 in a thread of its own (so crawler can run in this process
on its own event loop), answering each path with exactly the bytes a test gave it, and the
Hypothesis strategy of such replies: status lines, headers (duplicate, folded, huge, conflicting
Content-Length and Transfer-Encoding, bogus charsets and encodings) and bodies (truncated,
over-long, bad chunking, bad gzip/br)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import zlib
from collections import Counter

import brotli
from hypothesis import strategies as st


class Reply:
    """What the server sends for one path. Not a dataclass: Hypothesis prints dataclasses
    field by field, and a body of 300 kB makes a useless report."""

    def __init__(
        self,
        head: bytes,
        body: bytes = b"",
        stall_s: float = 0.0,
        describe: str = "",
        location: str | None = None,
    ) -> None:
        self.head = head  # status line and headers (the blank line added by ``finish``)
        self.body = body
        self.stall_s = stall_s  # wait this long after the head, before the body
        self.describe = describe
        self.location = location  # a redirect's, as drawn (SELF and NEXT filled in later)

    def __repr__(self) -> str:
        location = f", location={self.location[:100]!r}" if self.location is not None else ""
        head, body = self.head[:400], self.body[:60]
        return f"Reply({self.describe}{location}, head={head!r}..., body={body!r}...)"


class RawServer:
    """Not a dataclass either: a test's report would print every route."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.hits: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="raw-http")

    def __repr__(self) -> str:
        return f"RawServer(port={self.port}, {len(self.routes)} routes)"

    def __enter__(self) -> RawServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 20)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            target = head.split(b" ", 2)[1].decode("latin-1")
            self.hits[target] += 1
            reply = self.routes.get(target)
            if reply is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(reply.head)
                await writer.drain()
                if reply.stall_s:
                    await asyncio.sleep(reply.stall_s)
                writer.write(reply.body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except IndexError:  # not even a request line
            pass
        except asyncio.CancelledError:  # the server is stopping, maybe in a stall
            pass
        finally:
            # Every reply ends by closing: a body without a length ends there, a truncated one
            # is seen as such, and no connection is reused after a reply that broke it.
            with contextlib.suppress(OSError):
                writer.close()


# --- generated replies ------------------------------------------------------------------------

STATUS_LINES = st.one_of(
    st.sampled_from(
        [200] * 6 + [201, 203, 204, 206, 299, 304, 400, 404, 410, 429, 500, 503, 599]
    ).map(lambda code: f"HTTP/1.1 {code} Whatever".encode()),
    st.sampled_from(
        [
            b"HTTP/1.0 200 OK",
            b"HTTP/1.1 200",
            b"HTTP/1.1 200 ",
            b"HTTP/2 200 OK",
            b"HTTP/2.0 200 OK",
            b"HTTP/1.1 abc OK",
            b"HTTP/1.1 -1 No",
            b"HTTP/1.1 2000 Big",
            b"HTTP/1.1 99 Low",
            b"HTTP/1.1 100 Continue",
            b"HTTP/1.1 101 Switching Protocols",
            b"ICY 200 OK",
            b"http/1.1 200 ok",
            b"HTTP/1.1 200 OK\x00",
            b"HTTP/1.1 200 \xff\xfe",
            b"HTTP/1.1 200 " + b"r" * 70000,
            b"",
            b"\x00\x01\x02garbage",
            b"HTTP/1.1 200 OK\r\nHTTP/1.1 500 Again",
            b"HTTP/1.1  200  OK",
            b" HTTP/1.1 200 OK",
        ]
    ),
)
REDIRECT_LINES = st.sampled_from([301, 302, 303, 307, 308]).map(
    lambda code: f"HTTP/1.1 {code} Moved".encode()
)
TEXT_BODIES = st.one_of(
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"<html><head><meta charset='gb2312'></head><body>\xc4\xe3\xba\xc3</body></html>",
            b'{"ok": true, "n": [1, 2, 3]}',
            b'{"truncated": ',
            b'\xef\xbb\xbf{"bom": 1}',
            "héllo wörld ☃".encode("utf-16"),
            "héllo".encode("utf-16-le"),
            b"\xff\xfe\xfd",
            b"",
            b"null",
            b"NaN",
            b"[" * 10000 + b"]" * 10000,
        ]
    ),
)
BODIES = st.one_of(
    TEXT_BODIES,
    st.binary(max_size=300),
    st.integers(50_000, 300_000).map(lambda n: bytes(i % 251 for i in range(n))),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        b"text/html",
        b"text/html; charset=utf-8",
        b"text/html; charset=gb2312",
        b"text/plain; charset=nope-1",
        b'text/plain; charset="utf-16"',
        b"text/plain; charset=",
        b"text/plain; charset=rot13",
        b"text/plain; charset=base64",
        b"text/plain; charset=undefined",
        b"text/plain; charset=utf-8; charset=latin-1",
        b"application/json",
        b"application/json; charset=utf-32",
        b"application/octet-stream",
        b"image/png",
        b"x/\xff\xfe",
        b";;;",
        b"text/html; charset=\x00",
        b"a" * 9000,
    ]
)
ENCODINGS = st.sampled_from(
    [
        "none",
        "gzip",
        "gzip-truncated",
        "gzip-garbage",
        "gzip-twice",
        "gzip-trailing-junk",
        "br",
        "br-truncated",
        "br-garbage",
        "deflate",
        "deflate-raw",
        "deflate-garbage",
        "zstd",
        "identity",
        "x-bogus",
        "gzip,br",
        "GZIP",
    ]
)
FRAMINGS = st.sampled_from(
    [
        "length",
        "length",
        "length",
        "close",
        "chunked",
        "chunked",
        "length-short",  # over-long: more body than the length says
        "length-long",  # truncated: the connection closes before the length is reached
        "length-negative",
        "length-junk",
        "length-twice-same",
        "length-twice-differ",
        "length-and-chunked",
        "chunked-bad-size",
        "chunked-no-end",
        "chunked-extensions",
        "chunked-huge-size",
        "chunked-trailers",
        "te-gzip-chunked",
        "te-bogus",
        "te-chunked-twice",
    ]
)
EXTRA_HEADERS = st.lists(
    st.sampled_from(
        [
            b"X-Dup: 1\r\nX-Dup: 2",
            b"X-Folded: a\r\n  folded b",
            b"X-Huge: " + b"h" * 9000,
            b"X-Huger: " + b"h" * 100_000,
            b"X-Many: 1\r\n" * 200 + b"X-Last: 1",
            b"No colon here",
            b"X-Nul: a\x00b",
            b"X-Bytes: \xff\xfe\x80",
            b"Bad Name: x",
            b": empty name",
            b"X-Empty:",
            b"Set-Cookie: a=b; Path=/; Expires=never",
            b"Set-Cookie: \xff=\xfe",
            b"Retry-After: soon",
            b"Content-Type: text/html\r\nContent-Type: application/json",
            b"Connection: keep-alive",
            b"Connection: upgrade\r\nUpgrade: websocket",
            b"Content-Range: bytes 0-1/2",
            b'ETag: "x"',
            b"Last-Modified: yesterday",
            b"Date: \x00",
        ]
    ),
    max_size=3,
)
LOCATIONS = st.sampled_from(
    [
        "SELF",  # a loop
        "NEXT",  # another reply of the batch
        # "http://[::1]@" left out while it is a known failure: test_http_regressions.py
        "http://[1:2]/",
        "ht!tp://x",
        "",
        "//",
        "/",
        "?q",
        "#frag",
        "javascript:alert(1)",
        "ftp://127.0.0.1/x",
        "http://127.0.0.1:1/refused",
        "http://%2F/",
        "http://bücher.invalid/",
        "/" + "l" * 9000,
        "\x00",
        "http://127.0.0.1:99999/",
    ]
)


def _encode(body: bytes, encoding: str) -> tuple[bytes, bytes | None]:
    """(encoded body, Content-Encoding value) for a named (maybe broken) encoding."""
    if encoding == "none":
        return body, None
    if encoding.startswith("gzip"):
        data = gzip.compress(body)
        if encoding == "gzip-truncated":
            data = data[: max(1, len(data) // 2)]
        elif encoding == "gzip-garbage":
            data = b"\x1f\x8b\x08\x00garbage" + body[:20]
        elif encoding == "gzip-twice":
            return gzip.compress(data), b"gzip, gzip"
        elif encoding == "gzip-trailing-junk":
            data += b"junk after the stream"
        return data, b"gzip"
    if encoding.startswith("br"):
        data = brotli.compress(body)
        if encoding == "br-truncated":
            data = data[: max(1, len(data) // 2)]
        elif encoding == "br-garbage":
            data = b"\xff\xff\xff not brotli"
        return data, b"br"
    if encoding == "deflate":
        return zlib.compress(body), b"deflate"
    if encoding == "deflate-raw":
        compressor = zlib.compressobj(wbits=-15)
        return compressor.compress(body) + compressor.flush(), b"deflate"
    if encoding == "deflate-garbage":
        return b"\x78\x9c garbage", b"deflate"
    if encoding == "zstd":
        return b"\x28\xb5\x2f\xfd not really zstd", b"zstd"
    if encoding == "gzip,br":
        return brotli.compress(gzip.compress(body)), b"gzip, br"
    if encoding == "GZIP":
        return gzip.compress(body), b"GZIP"
    return body, encoding.encode()


def _chunks(data: bytes, size: int = 7000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or []


def _frame(body: bytes, framing: str) -> tuple[list[bytes], bytes]:
    """(framing headers, body bytes on the wire)."""
    n = len(body)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _chunks(body)) + b"0\r\n\r\n"
    if framing == "length":
        return [b"Content-Length: %d" % n], body
    if framing == "close":
        return [], body
    if framing == "chunked":
        return [b"Transfer-Encoding: chunked"], chunked
    if framing == "length-short":
        return [b"Content-Length: %d" % (n // 2)], body + b"EXTRA BYTES AFTER THE BODY"
    if framing == "length-long":
        return [b"Content-Length: %d" % (n + 1000)], body
    if framing == "length-negative":
        return [b"Content-Length: -5"], body
    if framing == "length-junk":
        return [b"Content-Length: 12abc"], body
    if framing == "length-twice-same":
        return [b"Content-Length: %d" % n, b"Content-Length: %d" % n], body
    if framing == "length-twice-differ":
        return [b"Content-Length: %d" % n, b"Content-Length: %d" % (n + 3)], body
    if framing == "length-and-chunked":
        return [b"Content-Length: %d" % n, b"Transfer-Encoding: chunked"], chunked
    if framing == "chunked-bad-size":
        return [b"Transfer-Encoding: chunked"], b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    if framing == "chunked-no-end":
        return [b"Transfer-Encoding: chunked"], chunked[: -len(b"0\r\n\r\n")]
    if framing == "chunked-extensions":
        wire = b"".join(b"%x;a=b;c\r\n%s\r\n" % (len(c), c) for c in _chunks(body))
        return [b"Transfer-Encoding: chunked"], wire + b"0;x=y\r\n\r\n"
    if framing == "chunked-huge-size":
        return [b"Transfer-Encoding: chunked"], b"ffffffffffffffffff\r\n" + body
    if framing == "chunked-trailers":
        return [b"Transfer-Encoding: chunked"], chunked[:-2] + b"X-Trailer: 1\r\n\r\n"
    if framing == "te-gzip-chunked":
        data = gzip.compress(body)
        wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _chunks(data)) + b"0\r\n\r\n"
        return [b"Transfer-Encoding: gzip, chunked"], wire
    if framing == "te-bogus":
        return [b"Transfer-Encoding: bogus"], body
    if framing == "te-chunked-twice":
        return [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], chunked
    raise AssertionError(framing)


# Well-formed replies, so that about half of them reach the body and the sinks.
CLEAN_STATUS_LINES = st.sampled_from([200] * 8 + [201, 204, 404, 500]).map(
    lambda code: f"HTTP/1.1 {code} OK".encode()
)
CLEAN_ENCODINGS = st.sampled_from(["none", "none", "gzip", "br", "deflate", "identity"])
CLEAN_FRAMINGS = st.sampled_from(["length", "close", "chunked", "chunked-extensions"])
CLEAN_HEADERS = st.lists(
    st.sampled_from([b"X-Dup: 1\r\nX-Dup: 2", b'ETag: "x"', b"Set-Cookie: a=b; Path=/"]),
    max_size=2,
)


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    """A reply, well-formed (with odd bodies and charsets) or not; a redirect has its
    Location as drawn (SELF and NEXT filled in later)."""
    clean = draw(st.booleans())
    redirect = draw(st.integers(0, 7)) == 0
    status = draw(REDIRECT_LINES if redirect else CLEAN_STATUS_LINES if clean else STATUS_LINES)
    body = draw(BODIES)
    encoding = draw(CLEAN_ENCODINGS if clean else ENCODINGS)
    encoded, content_encoding = _encode(body, encoding)
    framing = draw(CLEAN_FRAMINGS if clean else FRAMINGS)
    framing_headers, wire = _frame(encoded, framing)
    headers: list[bytes] = []
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type)
    if content_encoding is not None:
        headers.append(b"Content-Encoding: " + content_encoding)
    headers += framing_headers
    headers += draw(CLEAN_HEADERS if clean else EXTRA_HEADERS)
    headers = draw(st.permutations(headers))
    stall = 0.0
    if draw(st.integers(0, 30)) == 0:
        stall = 1.5  # past the job's sock_read: a timeout
    location = draw(LOCATIONS) if redirect else None
    describe = f"{status[:40]!r} {encoding} {framing} {len(body)}B{'' if clean else ' odd'}"
    return Reply(b"\r\n".join([status, *headers]), wire, stall, describe, location)


def finish(reply: Reply, self_url: str, next_url: str) -> Reply:
    """The head completed: Location (SELF, NEXT filled in), Connection: close, blank line."""
    head = reply.head
    location = reply.location
    if location is not None:
        target = {"SELF": self_url, "NEXT": next_url}.get(location, location)
        head += b"\r\nLocation: " + target.encode("utf-8", "surrogateescape")
    head += b"\r\nConnection: close\r\n\r\n"
    return Reply(head, reply.body, reply.stall_s, reply.describe)


# Not warc: its sink is being built (C16) and its sha256 is of a record, not of a file.
SAVE_MODES = st.sampled_from(["text", "bytes", "json", "jsonl"])
METHODS = st.sampled_from(["GET", "GET", "GET", "POST", "HEAD"])


def job_entry(
    name: str, urls: list[str], save: str, method: str, max_bytes: int
) -> dict[str, object]:
    return {
        "name": name,
        "urls": urls,
        "save": save,
        "method": method,
        "retries": 0,
        "max_redirects": 3,
        "max_bytes": max_bytes,
        "timeout": {"total": 10, "sock_read": 0.5},
    }


def job_file_text(jobs: list[dict[str, object]]) -> str:
    return json.dumps({"version": 1, "concurrency": 8, "jobs": jobs})
