"""Replies that fuzzing the HTTP side found mishandled, each a plain regression test."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .rawhttp import RawServer, Reply, finish, job_entry, job_file_text
from .test_http_fuzz import check_output, run_in_process


def run_one(head: bytes, body: bytes = b"") -> tuple[int, str, dict[str, object]]:
    with RawServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.routes["/r/x"] = finish(Reply(head, body), server.url("/r/x"), server.url("/"))
        url = server.url("/r/x")
        job = Path(tmp) / "job.yaml"
        job.write_text(job_file_text([job_entry("a", [url], "bytes", "GET", 1 << 20)]))
        code, stderr = run_in_process(job, Path(tmp) / "out")
        [record] = check_output(Path(tmp) / "out", [url])
        return code, stderr, record


def test_a_redirect_to_a_url_yarl_cannot_parse() -> None:
    code, stderr, record = run_one(
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1]@\r\nContent-Length: 0"
    )
    assert code == 1
    assert "Traceback" not in stderr, stderr
    error = record["error"]
    assert isinstance(error, dict) and error["kind"] == "redirects", record


def test_a_crawled_page_linking_to_a_url_yarl_cannot_parse() -> None:
    page = b'<html><body><a href="http://[::1]@">x</a><a href="/r/y">y</a></body></html>'
    with RawServer() as server, tempfile.TemporaryDirectory() as tmp:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d" % len(page)
        server.routes["/r/x"] = finish(Reply(head, page), "", "")
        server.routes["/r/y"] = finish(
            Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2", b"ok"), "", ""
        )
        job = Path(tmp) / "job.yaml"
        entry = job_entry("a", [server.url("/r/x")], "text", "GET", 1 << 20)
        entry["follow"] = {"depth": 1, "robots": False}
        job.write_text(job_file_text([entry]))
        code, stderr = run_in_process(job, Path(tmp) / "out")
        records = check_output(Path(tmp) / "out", [server.url("/r/x"), server.url("/r/y")])
        assert "Traceback" not in stderr, stderr
        assert code == 0, [r["error"] for r in records]
