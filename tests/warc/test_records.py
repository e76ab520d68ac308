"""save: warc (C16) on a varied site, read back with warcio, FastWARC, cdxj-indexer and by
hand: one warcinfo per file, a request and a response record per redirect hop, digests that
verify, bodies and headers as the server sent them (or decoded with warc_decompress),
secrets masked (C3), and manifest offsets that open the final response record."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import CRAWLER_BIN, read_manifest
from . import origin as o
from .readers import Rec, cdxj, members, read_fastwarc, read_warcio, record_at, sha1_b32
from .serving import serving

AUTH = "Bearer sekrit-AUTH-7f3a"
API_KEY = "sekrit-KEY-91c2"
COOKIE = "sekrit-COOKIE-55d0"
SECRETS = (AUTH, API_KEY, COOKIE, "sekrit")

RAW_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"X-Repeated: one\r\n"
    b"x-lower-case: kept as sent\r\n"
    b"X-Repeated: two\r\n"
    b"X-Latin-1: caf\xe9 cr\xe8me\r\n"
    b"Content-Length: 19\r\n"
    b"\r\n"
)
RAW_BODY = b"raw, byte for byte\n"
RAW_HEADERS = [
    ("Content-Type", "text/plain"),
    ("X-Repeated", "one"),
    ("x-lower-case", "kept as sent"),
    ("X-Repeated", "two"),
    ("X-Latin-1", "café crème"),  # warcio reads bytes that are not UTF-8 as Latin-1
    ("Content-Length", "19"),
]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Archive:
    out: Path
    base: str
    raw: str
    refused: str
    origin: o.Origin
    manifest: list[dict[str, Any]]
    output: str  # the command's stdout and stderr

    def files(self, job: str) -> list[Path]:
        return sorted((self.out / job).iterdir())

    def records(self, job: str) -> list[Rec]:
        return [r for path in self.files(job) for r in read_warcio(path)]

    def line(self, job: str, url: str) -> dict[str, Any]:
        (found,) = [r for r in self.manifest if r["job"] == job and r["url"] == url]
        return found

    def response(self, job: str, url: str) -> Rec:
        (found,) = [r for r in self.records(job) if r.type == "response" and r.uri == url]
        return found


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """One run of the installed command over the whole site, read by every test here."""
    origin = o.Origin()

    async def raw(reader, writer):
        writer.write(RAW_HEAD + RAW_BODY)
        await writer.drain()

    with serving([o.origin_app(origin)], [raw]) as served:
        base = served.apps[0]
        raw_url = f"http://127.0.0.1:{served.raws[0]}/raw"
        refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
        site_urls = [
            f"{base}/text",
            f"{base}/binary",
            f"{base}/missing",
            f"{base}/down",
            f"{base}/hop/1",
            f"{base}/gz",
            f"{base}/br",
            f"{base}/chunked",
            raw_url,
            refused,
        ]
        folder = tmp_path_factory.mktemp("warc")
        job = folder / "job.yaml"
        job.write_text(
            json.dumps(
                {
                    "version": 1,
                    "defaults": {"save": "warc", "retries": 1},
                    "jobs": [
                        {"name": "site", "urls": site_urls, "record_headers": True},
                        {
                            "name": "post",
                            "method": "POST",
                            "url": f"{base}/post",
                            "json": {"query": "archive me", "n": [1, 2, 3]},
                        },
                        {
                            "name": "secret",
                            "url": f"{base}/secret",
                            "headers": {"Authorization": AUTH, "X-Api-Key": "${WARC_TEST_KEY}"},
                            "cookies": {"session": COOKIE},
                        },
                        {
                            "name": "decoded",
                            "warc_decompress": True,
                            "urls": [f"{base}/gz", f"{base}/br", f"{base}/chunked", f"{base}/text"],
                        },
                    ],
                }
            )
        )
        out = folder / "out"
        done = subprocess.run(
            [CRAWLER_BIN, "run", str(job), "-o", str(out)],
            env={**os.environ, "WARC_TEST_KEY": API_KEY},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr  # the 404, the 503 and the refused connection
        assert origin.headers["/secret"]["Authorization"] == AUTH  # the server got them
        assert origin.headers["/secret"]["X-Api-Key"] == API_KEY
        assert COOKIE in origin.headers["/secret"]["Cookie"]
        yield Archive(
            out, base, raw_url, refused, origin, read_manifest(out), done.stdout + done.stderr
        )


JOBS = ("site", "post", "secret", "decoded")


def test_every_file_reads_with_warcio_fastwarc_and_by_hand(archive: Archive):
    for job in JOBS:
        files = archive.files(job)
        assert [p.name for p in files] == [
            f"{job}-{archive.manifest[0]['run']}-00000.warc.gz"
        ]  # nothing else in the job folder
        path = files[0]
        by_warcio = read_warcio(path)  # both digests checked by warcio as it reads
        by_hand = members(path)  # each gzip member is one whole record
        by_fastwarc = read_fastwarc(path)
        assert len(by_warcio) == len(by_hand) == len(by_fastwarc) >= 3
        assert [r.offset for r in by_warcio] == [m.offset for m in by_hand]
        assert [r.length for r in by_warcio] == [m.length for m in by_hand]
        assert [f.offset for f in by_fastwarc] == [m.offset for m in by_hand]
        assert [r.type for r in by_warcio] == [f.type for f in by_fastwarc]
        assert all(f.block_ok and f.payload_ok for f in by_fastwarc), by_fastwarc
        for member in by_hand:
            # The digests, computed here with hashlib rather than by a WARC library.
            assert member.headers["WARC-Block-Digest"] == sha1_b32(member.block)
            if member.headers["WARC-Type"] in ("request", "response"):
                assert member.headers["WARC-Payload-Digest"] == sha1_b32(member.payload)


def test_each_file_starts_with_warcinfo(archive: Archive):
    run = archive.manifest[0]["run"]
    for job in JOBS:
        (path,) = archive.files(job)
        records = read_warcio(path)
        assert records[0].type == "warcinfo"
        assert [r.type for r in records].count("warcinfo") == 1
        fields = records[0].payload.decode()
        assert "software: crawler/" in fields
        assert f"isPartOf: {run}" in fields
        assert "job.yaml" in fields
        assert records[0].headers["WARC-Filename"] == path.name
        assert "WARC-Date" in records[0].headers


def pairs(records: list[Rec]) -> list[tuple[Rec, Rec]]:
    """(request, response) in file order; each request is followed by its response."""
    body = [r for r in records if r.type != "warcinfo"]
    assert len(body) % 2 == 0
    found = []
    for request, response in zip(body[::2], body[1::2], strict=True):
        assert (request.type, response.type) == ("request", "response")
        found.append((request, response))
    return found


def test_request_and_response_per_hop_bound_by_concurrent_to(archive: Archive):
    b = archive.base
    expected = {
        "site": [
            f"{b}/text",
            f"{b}/binary",
            f"{b}/missing",
            f"{b}/down",
            f"{b}/hop/1",
            f"{b}/hop/2",
            f"{b}/final",
            f"{b}/gz",
            f"{b}/br",
            f"{b}/chunked",
            archive.raw,
        ],
        "post": [f"{b}/post"],
        "secret": [f"{b}/secret"],
        "decoded": [f"{b}/gz", f"{b}/br", f"{b}/chunked", f"{b}/text"],
    }
    for job, urls in expected.items():
        found = pairs(archive.records(job))
        assert sorted(resp.uri for _, resp in found) == sorted(urls)  # each exactly once
        ids = [r.id for pair in found for r in pair]
        assert len(set(ids)) == len(ids)
        for request, response in found:
            assert request.headers["WARC-Concurrent-To"] == response.id
            assert request.uri == response.uri
            for record in (request, response):
                for name in (
                    "WARC-Target-URI",
                    "WARC-Date",
                    "WARC-Payload-Digest",
                    "WARC-Block-Digest",
                    "WARC-Record-ID",
                ):
                    assert record.headers.get(name), (name, record.headers)
            assert request.headers["Content-Type"] == "application/http; msgtype=request"
            assert response.headers["Content-Type"] == "application/http; msgtype=response"
    # The redirect chain: three hops in order, each response as the server sent it.
    site = pairs(archive.records("site"))
    chain = [(req, resp) for req, resp in site if "/hop/" in resp.uri or "/final" in resp.uri]
    assert [resp.uri for _, resp in chain] == [f"{b}/hop/1", f"{b}/hop/2", f"{b}/final"]
    assert [resp.status_line for _, resp in chain] == [
        "HTTP/1.1 302 Found",
        "HTTP/1.1 301 Moved Permanently",
        "HTTP/1.1 200 OK",
    ]
    assert [resp.http("Location") for _, resp in chain] == [["/hop/2"], ["/final"], []]
    assert [req.status_line for req, _ in chain] == [
        "GET /hop/1 HTTP/1.1",
        "GET /hop/2 HTTP/1.1",
        "GET /final HTTP/1.1",
    ]
    assert chain[0][1].payload == b"to hop 2"
    assert chain[2][1].payload == o.FINAL
    # The 503 was retried, but only the last attempt is archived; the refused one not at all.
    assert archive.origin.hits["/down"] == 2
    uris = {r.uri for job in JOBS for r in archive.records(job)}
    assert archive.refused not in uris
    refused = archive.line("site", archive.refused)
    assert refused["status"] is None and refused["error"]["kind"] == "connect"
    assert refused["path"] is None and "warc_offset" not in refused


def test_bodies_and_headers_are_stored_as_received(archive: Archive):
    b = archive.base
    stored = {url: archive.response("site", f"{b}{url}") for url in
              ("/text", "/binary", "/missing", "/down", "/gz", "/br", "/chunked")}  # fmt: skip
    assert stored["/text"].payload == o.TEXT
    assert stored["/binary"].payload == o.BINARY
    assert stored["/missing"].payload == o.MISSING
    assert stored["/missing"].status_line == "HTTP/1.1 404 Not Found"
    assert stored["/down"].payload == o.DOWN
    assert stored["/down"].status_line == "HTTP/1.1 503 Service Unavailable"
    # Compressed responses: the bytes the server sent, Content-Encoding kept.
    assert stored["/gz"].payload == o.GZIP_SENT
    assert stored["/gz"].http("Content-Encoding") == ["gzip"]
    assert stored["/gz"].http("Content-Length") == [str(len(o.GZIP_SENT))]
    assert stored["/br"].payload == o.BR_SENT
    assert stored["/br"].http("Content-Encoding") == ["br"]
    assert stored["/br"].http("Content-Length") == [str(len(o.BR_SENT))]
    # Chunked on the wire (the manifest recorded the headers as received) ...
    chunked_line = archive.line("site", f"{b}/chunked")
    assert chunked_line["headers"]["Transfer-Encoding"] == "chunked"
    # ... stored without its framing, and without the header that announced it.
    assert stored["/chunked"].payload == o.CHUNKED
    assert stored["/chunked"].http("Transfer-Encoding") == []
    # Every header as the server wrote it: order, spelling, repeats.
    raw = archive.response("site", archive.raw)
    assert raw.status_line == "HTTP/1.1 200 OK"
    assert raw.http_headers == RAW_HEADERS
    assert raw.payload == RAW_BODY
    # Byte for byte: the record's block is the response as it came over the wire (a header
    # value that is not ASCII included: warcio's writer would have percent-encoded it).
    (path,) = archive.files("site")
    (member,) = [m for m in members(path) if m.offset == raw.offset]
    assert member.block == RAW_HEAD + RAW_BODY


def test_warc_decompress_stores_decoded_payloads(archive: Archive):
    b = archive.base
    for url, plain in (("/gz", o.GZIP_PLAIN), ("/br", o.BR_PLAIN), ("/chunked", o.CHUNKED)):
        record = archive.response("decoded", f"{b}{url}")
        assert record.payload == plain, url
        assert record.http("Content-Encoding") == []
        assert record.http("Transfer-Encoding") == []
        assert record.http("Content-Length") == [str(len(record.payload))]
        line = archive.line("decoded", f"{b}{url}")
        assert line["bytes"] == len(plain)
    text = archive.response("decoded", f"{b}/text")
    assert text.payload == o.TEXT
    assert text.http("Content-Length") == [str(len(o.TEXT))]


def test_post_request_record_holds_the_body_sent(archive: Archive):
    ((request, response),) = pairs(archive.records("post"))
    assert request.status_line == "POST /post HTTP/1.1"
    assert request.payload == archive.origin.bodies["/post"]
    assert json.loads(request.payload) == {"query": "archive me", "n": [1, 2, 3]}
    assert request.http("Content-Type") == ["application/json"]
    assert request.http("Content-Length") == [str(len(request.payload))]
    assert json.loads(response.payload) == {"received": {"query": "archive me", "n": [1, 2, 3]}}


def test_secret_header_values_never_land_under_out(archive: Archive):
    ((request, _),) = pairs(archive.records("secret"))
    # The headers are recorded as sent, by name, with their values masked.
    names = [name.lower() for name, _ in request.http_headers]
    assert {"authorization", "x-api-key", "cookie"} <= set(names)
    for name in ("Authorization", "X-Api-Key", "Cookie"):
        (value,) = request.http(name)
        assert all(secret not in value for secret in SECRETS)
    for path in archive.out.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        texts = [data]
        if path.name.endswith(".gz"):
            texts.append(gzip.decompress(data))
        for text in texts:
            for secret in SECRETS:
                assert secret.encode() not in text, (secret, path)
    for secret in SECRETS:
        assert secret not in archive.output


def test_manifest_offsets_open_the_final_response_record(archive: Archive):
    lines = [r for r in archive.manifest if r["path"]]
    assert len(lines) == 9 + 1 + 1 + 4  # every request but the refused one
    for line in lines:
        path = archive.out / line["path"]
        assert path.parent.name == line["job"]
        record = record_at(path, line["warc_offset"], line["warc_length"])
        assert record.type == "response"
        assert record.uri == line["final_url"]
        assert line["bytes"] == len(record.payload)
        assert line["sha256"] == hashlib.sha256(record.payload).hexdigest()
        # The same record where warcio finds it by reading the whole file.
        (whole,) = [r for r in read_warcio(path) if r.offset == line["warc_offset"]]
        assert whole.id == record.headers["WARC-Record-ID"]
        assert whole.length == line["warc_length"]
    hop = archive.line("site", f"{archive.base}/hop/1")
    assert hop["final_url"] == f"{archive.base}/final"
    assert record_at(archive.out / hop["path"], hop["warc_offset"], hop["warc_length"]).payload == (
        o.FINAL
    )


def test_cdxj_indexer_indexes_every_file_and_finds_every_url_once(archive: Archive):
    files = [path for job in JOBS for path in archive.files(job)]
    index = cdxj(files)  # one command over every file: it exits 0 only when all are read
    for job in JOBS:
        (path,) = archive.files(job)
        mine = [fields for _, _, fields in index if fields["filename"] == path.name]
        responses = [r for r in read_warcio(path) if r.type == "response"]
        urls = Counter(fields["url"] for fields in mine)
        assert urls == Counter(r.uri for r in responses)
        assert max(urls.values()) == 1
        # Its offsets and lengths are warcio's (where pywb will seek to).
        by_offset = {r.offset: r for r in responses}
        for fields in mine:
            record = by_offset[int(fields["offset"])]
            assert int(fields["length"]) == record.length
            assert fields["url"] == record.uri
    statuses = {f["url"]: f["status"] for _, _, f in index if f["filename"].startswith("site-")}
    assert statuses[f"{archive.base}/missing"] == "404"
    assert statuses[f"{archive.base}/down"] == "503"
    assert statuses[f"{archive.base}/hop/1"] == "302"
