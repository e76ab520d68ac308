"""What each save mode writes (C5), the file extensions (C6), and what the manifest says about
it (C8). Bodies come from real local servers with exactly the headers given here."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest

from .conftest import Route, crawl, run_job
from .servers import start_raw_server

# Binary-looking bytes with every byte value, long enough to be streamed in chunks.
PAYLOAD = bytes(range(256)) * 64 + "tail: façade ☃".encode()
DATA = {"name": "Zoë", "city": "東京", "list": [1, 2.5, None, True], "nested": {"k": "☃"}}


def check_file(out: Path, record: dict[str, Any]) -> bytes:
    """The saved file's bytes, after checking the manifest describes exactly that file."""
    data = (out / record["path"]).read_bytes()
    assert record["bytes"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    return data


def job_files(out: Path, job: str) -> list[Path]:
    folder = out / job
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- text -----------------------------------------------------------------------------------


async def test_text_is_written_as_utf8(serve, write_job, tmp_path):
    text = "Grüße aus Köln: Straße, Brücke, Café. " * 10
    base = await serve(
        {"t": (text.encode("iso-8859-1"), {"Content-Type": "text/plain; charset=iso-8859-1"})}
    )
    summary, out, records = await crawl(tmp_path, write_job, [{"name": "t", "url": base + "t"}])
    assert summary["exit_code"] == 0
    record = records[base + "t"]
    assert record["ok"]
    assert check_file(out, record) == text.encode("utf-8")
    assert record["charset"] == "iso8859-1"
    assert record["content_type"] == "text/plain; charset=iso-8859-1"


async def test_large_text_body_is_decoded_whole(serve, write_job, tmp_path):
    # Larger than what is kept in memory while reading; no charset anywhere.
    line = "Москва — столица России, крупнейший город страны и её культурный центр.\n"
    text = line * (9 * 1024 * 1024 // len(line.encode("cp1251")) + 1)
    body = text.encode("cp1251")
    base = await serve({"big": (body, {"Content-Type": "text/plain"})})
    summary, out, records = await crawl(tmp_path, write_job, [{"name": "t", "url": base + "big"}])
    assert summary["exit_code"] == 0
    record = records[base + "big"]
    assert record["ok"], record
    assert body.decode(record["charset"]) == text
    assert check_file(out, record) == text.encode("utf-8")


# --- bytes ----------------------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", _raw_deflate),  # raw, as some servers send it
        ("br", brotli.compress),
        ("identity", lambda data: data),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "br", "identity"],
)
async def test_bytes_are_saved_as_received_after_content_encoding(
    serve, write_job, tmp_path, encoding, compress
):
    wire = compress(PAYLOAD)
    assert (wire != PAYLOAD) == (encoding != "identity")
    headers = {"Content-Type": "application/octet-stream", "Content-Encoding": encoding}
    base = await serve({"b": (wire, headers)})
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "raw", "url": base + "b", "save": "bytes"}]
    )
    assert summary["exit_code"] == 0
    record = records[base + "b"]
    assert record["ok"], record
    assert check_file(out, record) == PAYLOAD
    assert record["path"].startswith("raw/")
    assert record["path"].endswith(".bin")


async def test_large_gzip_body_is_streamed_to_disk_whole(serve, write_job, tmp_path):
    # Larger than what is kept in memory, so it goes through a temp file.
    payload = (bytes(range(251)) * 40_000)[: 9 * 1024 * 1024]
    wire = gzip.compress(payload, compresslevel=1)
    base = await serve(
        {"big": (wire, {"Content-Type": "application/pdf", "Content-Encoding": "gzip"})}
    )
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "big", "url": base + "big", "save": "bytes"}]
    )
    assert summary["exit_code"] == 0
    record = records[base + "big"]
    assert check_file(out, record) == payload
    assert record["path"].endswith(".pdf")
    assert job_files(out, "big") == [out / record["path"]]  # no partial file beside it


# --- json -----------------------------------------------------------------------------------


async def test_json_is_parsed_and_written_as_utf8(serve, write_job, tmp_path):
    text = json.dumps(DATA, ensure_ascii=False)
    routes: dict[str, Route] = {
        "utf8": (text.encode(), {"Content-Type": "application/json"}),
        "utf8-bom": (b"\xef\xbb\xbf" + text.encode(), {"Content-Type": "application/json"}),
        "utf16": (text.encode("utf-16"), {"Content-Type": "application/json"}),
        "utf16le": (text.encode("utf-16-le"), {"Content-Type": "application/json"}),
        "utf32": (text.encode("utf-32"), {"Content-Type": "application/json"}),
        "latin1": (
            json.dumps({"name": "Zoë", "ville": "Besançon"}, ensure_ascii=False).encode("latin-1"),
            {"Content-Type": "application/json; charset=iso-8859-1"},
        ),
        "as-text": (text.encode(), {"Content-Type": "text/plain"}),
    }
    base = await serve(routes)
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "api", "urls": [base + n for n in routes], "save": "json"}]
    )
    assert summary["exit_code"] == 0
    for name in routes:
        record = records[base + name]
        assert record["ok"], (name, record)
        data = check_file(out, record)
        assert not data.startswith(b"\xef\xbb\xbf"), name
        parsed = json.loads(data.decode("utf-8"))  # strict UTF-8, no BOM
        expected = {"name": "Zoë", "ville": "Besançon"} if name == "latin1" else DATA
        assert parsed == expected, name
        assert record["path"].endswith(".json"), name
        assert record["charset"] == "utf-8"


async def test_json_with_lone_surrogate_escape_is_saved(serve, write_job, tmp_path):
    # "\ud800" is valid JSON text; it has no UTF-8 form, so it must stay escaped.
    text = '{"broken": "a\\ud800b", "fine": "é"}'
    base = await serve({"s": (text.encode("utf-16"), {"Content-Type": "application/json"})})
    summary, out, records = await crawl(
        tmp_path,
        write_job,
        [
            {"name": "one", "url": base + "s", "save": "json"},
            {"name": "lines", "url": base + "s?lines", "save": "jsonl"},
        ],
    )
    assert summary["exit_code"] == 0
    record = records[base + "s"]
    assert record["ok"], record
    assert json.loads(check_file(out, record).decode("utf-8")) == json.loads(text)
    [line] = (out / "lines.jsonl").read_bytes().decode("utf-8").splitlines()
    assert json.loads(line)["data"] == json.loads(text)


async def test_invalid_json_fails_and_keeps_raw_bytes(serve, write_job, tmp_path):
    bad = b"<html><body>Service temporarily unavailable \xff</body></html>"
    routes: dict[str, Route] = {
        "bad": (bad, {"Content-Type": "application/json"}),
        "empty": (b"", {"Content-Type": "application/json"}),
        "good": (b'{"ok": true}', {"Content-Type": "application/json"}),
    }
    base = await serve(routes)
    summary, out, records = await crawl(
        tmp_path,
        write_job,
        [
            {"name": "api", "urls": [base + "bad", base + "empty", base + "good"], "save": "json"},
            {"name": "feed", "url": base + "bad?feed", "save": "jsonl"},
        ],
    )
    assert summary["exit_code"] == 1
    for url, body in ((base + "bad", bad), (base + "empty", b""), (base + "bad?feed", bad)):
        record = records[url]
        assert record["ok"] is False, url
        assert record["status"] == 200
        assert record["error"]["kind"] == "invalid_json"
        assert record["path"], url
        assert check_file(out, record) == body
    assert records[base + "good"]["ok"]
    assert json.loads(check_file(out, records[base + "good"])) == {"ok": True}
    # Nothing of the failed request went into the job's JSONL file.
    feed = out / "feed.jsonl"
    assert not feed.exists() or feed.read_bytes() == b""


# --- jsonl ----------------------------------------------------------------------------------


async def test_jsonl_appends_one_line_per_request_and_no_files(serve, write_job, tmp_path):
    routes: dict[str, Route] = {
        f"item{i}": (
            json.dumps({"i": i, "text": "Zoë ☃"}).encode(),
            {"Content-Type": "application/json"},
        )
        for i in range(5)
    }
    routes["list"] = (b"[1, 2, 3]", {"Content-Type": "application/json"})
    routes["utf16"] = (json.dumps(DATA).encode("utf-16"), {"Content-Type": "application/json"})
    base = await serve(routes)
    jobs = [{"name": "feed", "urls": [base + n for n in routes], "save": "jsonl"}]
    summary, out, records = await crawl(tmp_path, write_job, jobs)
    assert summary["exit_code"] == 0
    lines = (out / "feed.jsonl").read_bytes().decode("utf-8").splitlines()
    assert len(lines) == len(routes)
    by_url = {}
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"url", "status", "data"}
        assert obj["status"] == 200
        by_url[obj["url"]] = obj["data"]
    expected = {
        base + n: json.loads(body.decode("utf-16" if n == "utf16" else "utf-8"))
        for n, (body, _) in routes.items()
    }
    assert by_url == expected
    assert job_files(out, "feed") == []
    for record in records.values():
        assert record["ok"]
        assert record["path"] in (None, "feed.jsonl")
        assert record["bytes"] is None
        assert record["sha256"] is None
    # A later run appends; the lines of the first run stay.
    path = write_job(json.dumps({"version": 1, "jobs": jobs}))
    second = await run_job(path, out=out)
    assert second["exit_code"] == 0
    again = (out / "feed.jsonl").read_bytes().decode("utf-8").splitlines()
    assert again[: len(lines)] == lines
    assert len(again) == 2 * len(lines)


# --- HEAD -----------------------------------------------------------------------------------


async def test_head_saves_no_file(serve, write_job, tmp_path):
    base = await serve({"h": (b"<html>body</html>" * 50, {"Content-Type": "text/html"})})
    jobs = [
        {"name": "head", "url": base + "h", "method": "HEAD"},
        {"name": "headb", "url": base + "h?b", "method": "HEAD", "save": "bytes"},
        {"name": "headj", "url": base + "h?j", "method": "HEAD", "save": "json"},
    ]
    summary, out, records = await crawl(tmp_path, write_job, jobs)
    assert summary["exit_code"] == 0
    assert len(records) == 3
    for record in records.values():
        assert record["ok"], record
        assert record["method"] == "HEAD"
        assert record["status"] == 200
        assert record["path"] is None
        assert record["bytes"] == 0
        assert record["content_type"] == "text/html"
    for job in ("head", "headb", "headj"):
        assert job_files(out, job) == []


# --- extensions (C6) ------------------------------------------------------------------------

EXTENSIONS = [
    # (save, Content-Type, extension)
    ("text", "text/html", ".html"),
    ("text", "text/html; charset=utf-8", ".html"),
    ("text", "application/xhtml+xml", ".html"),
    ("text", "text/plain", ".txt"),
    ("text", "application/xml", ".xml"),
    ("text", "text/xml; charset=utf-8", ".xml"),
    ("text", "application/rss+xml", ".xml"),
    ("text", "text/csv", ".csv"),
    ("text", "application/octet-stream", ".txt"),
    ("json", "application/json", ".json"),
    ("json", "text/plain", ".json"),
    ("json", "application/ld+json", ".json"),
    ("bytes", "image/png", ".png"),
    ("bytes", "image/jpeg", ".jpg"),
    ("bytes", "application/pdf", ".pdf"),
    ("bytes", "application/zip", ".zip"),
    ("bytes", "text/plain", ".txt"),
    ("bytes", "text/html", ".html"),
    ("bytes", "application/json", ".json"),
    ("bytes", "application/octet-stream", ".bin"),
    ("bytes", "application/x-no-such-type", ".bin"),
]
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


async def test_extension_follows_save_mode_and_content_type(serve, write_job, tmp_path):
    routes: dict[str, Route] = {}
    jobs: dict[str, list[str]] = {"text": [], "json": [], "bytes": []}
    for n, (save, ctype, _) in enumerate(EXTENSIONS):
        body = b'{"n": %d}' % n
        routes[f"r{n}"] = (body, {"Content-Type": ctype})
        jobs[save].append(f"r{n}")
    base = await serve(routes)
    summary, out, records = await crawl(
        tmp_path,
        write_job,
        [
            {"name": save, "urls": [base + name for name in names], "save": save}
            for save, names in jobs.items()
        ],
    )
    assert summary["exit_code"] == 0
    for n, (save, ctype, ext) in enumerate(EXTENSIONS):
        record = records[base + f"r{n}"]
        assert record["content_type"] == ctype
        folder, _, name = record["path"].partition("/")
        assert folder == save
        assert name.endswith(ext), (save, ctype, name)
        assert not name[: -len(ext)].endswith("."), name
        assert SAFE_NAME.match(name), name
        assert check_file(out, record) == b'{"n": %d}' % n


async def test_bytes_without_content_type_get_bin(write_job, tmp_path):
    async def reply(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\x00\x01\x02\x03"
        )
        await writer.drain()

    server, port = await start_raw_server(reply)
    try:
        summary, out, records = await asyncio.wait_for(
            crawl(
                tmp_path,
                write_job,
                [{"name": "raw", "url": f"http://127.0.0.1:{port}/blob", "save": "bytes"}],
            ),
            30,
        )
    finally:
        server.close()
        await server.wait_closed()
    assert summary["exit_code"] == 0
    [record] = records.values()
    assert record["content_type"] is None
    assert record["path"].endswith(".bin")
    assert check_file(out, record) == b"\x00\x01\x02\x03"
