"""OUT/manifest.jsonl (C8): one whole JSON line per finished request, with the fields the
contract names, appended in order; readers skip a torn line."""

from __future__ import annotations

import json
import re
from typing import Any

from crawler.output.manifest import (
    MANIFEST,
    Manifest,
    Record,
    iter_records,
    last_run,
    utc_now,
)
from crawler.output.storage import Storage

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
    "key",
    "fetch_ms",  # time in attempts, the waits before retries left out (latency figures)
}


def record(run: str = "r1", key: str = "k1", **changes) -> Record:
    fields: dict[str, Any] = {
        "run": run,
        "job": "news",
        "method": "GET",
        "url": f"http://x.example/{key}",
        "final_url": f"http://x.example/{key}?final",
        "status": 200,
        "ok": True,
        "path": f"news/{key}.html",
        "bytes": 12,
        "sha256": "ab" * 32,
        "content_type": "text/html",
        "charset": "utf-8",
        "elapsed_ms": 12.5,
        "attempts": 2,
        "error": None,
        "fetched_at": "2024-01-01T00:00:00.123Z",
        "key": key,
    }
    fields.update(changes)
    return Record(**fields)


def test_a_line_has_exactly_the_contract_fields():
    line = record().to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = json.loads(line)
    assert set(data) == KEYS
    assert data == {
        "run": "r1",
        "job": "news",
        "method": "GET",
        "url": "http://x.example/k1",
        "final_url": "http://x.example/k1?final",
        "status": 200,
        "ok": True,
        "path": "news/k1.html",
        "bytes": 12,
        "sha256": "ab" * 32,
        "content_type": "text/html",
        "charset": "utf-8",
        "elapsed_ms": 12.5,
        "attempts": 2,
        "error": None,
        "fetched_at": "2024-01-01T00:00:00.123Z",
        "key": "k1",
        "fetch_ms": None,
    }


def test_a_failure_line_names_its_error():
    error = {"kind": "timeout", "message": "timed out"}
    line = record(ok=False, status=None, path=None, bytes=None, sha256=None, error=error)
    data = json.loads(line.to_line())
    assert data["ok"] is False
    assert data["error"] == error
    assert data["path"] is None and data["status"] is None


def test_crawl_mode_lines_add_depth_and_referrer():
    data = json.loads(record(depth=2, referrer="http://x.example/").to_line())
    assert set(data) == KEYS | {"depth", "referrer"}
    assert (data["depth"], data["referrer"]) == (2, "http://x.example/")

    seed = json.loads(record(depth=0, referrer=None).to_line())
    assert (seed["depth"], seed["referrer"]) == (0, None)


def test_the_line_starts_with_the_run():
    """Readers skip other runs' lines by their prefix without parsing them."""
    assert record(run="r-9").to_line().startswith(b'{"run":"r-9",')


def test_a_lone_surrogate_in_a_header_still_gives_one_valid_utf8_line():
    line = record(content_type="text/html; x=\udcff", charset="\udc80").to_line()
    text = line.decode("utf-8")  # strict: raises on invalid UTF-8
    assert text.endswith("\n") and text.count("\n") == 1
    data = json.loads(text)
    assert set(data) == KEYS
    assert data["content_type"].startswith("text/html; x=")
    assert data["key"] == "k1"


def test_non_ascii_text_round_trips():
    data = json.loads(record(url="http://x.example/é?q=日本", key="é").to_line())
    assert data["url"] == "http://x.example/é?q=日本"
    assert data["key"] == "é"


def test_manifest_appends_lines_in_order_and_knows_its_size(tmp_path):
    storage = Storage(tmp_path)
    storage.prepare()
    manifest = Manifest(storage)
    assert manifest.offset == 0
    assert manifest.append(record(key="a")) is True  # the queue was empty: write it soon
    assert manifest.append(record(key="b")) is False
    assert not (tmp_path / MANIFEST).exists() or (tmp_path / MANIFEST).stat().st_size == 0
    manifest.write()
    manifest.write()  # nothing queued: nothing written
    assert manifest.append(record(key="c")) is True
    manifest.write()
    storage.close()

    path = tmp_path / MANIFEST
    assert manifest.path == path
    assert manifest.offset == path.stat().st_size
    assert [json.loads(line)["key"] for line in path.read_bytes().splitlines()] == ["a", "b", "c"]


def test_a_manifest_of_an_earlier_run_is_appended_to(tmp_path):
    earlier = record(run="r0", key="old").to_line()
    (tmp_path / MANIFEST).write_bytes(earlier)
    storage = Storage(tmp_path)
    storage.prepare()
    manifest = Manifest(storage)
    assert manifest.offset == len(earlier)
    manifest.append(record(run="r1", key="new"))
    manifest.write()
    storage.close()
    assert manifest.offset == (tmp_path / MANIFEST).stat().st_size
    assert [r["key"] for r in iter_records(tmp_path / MANIFEST)] == ["old", "new"]


def test_iter_records_skips_a_torn_line_and_filters_by_run(tmp_path):
    path = tmp_path / MANIFEST
    path.write_bytes(
        record(run="r1", key="a").to_line()
        + record(run="r2", key="b").to_line()
        + b'{"run":"r1","job":"news","ur\n'  # torn mid-write, then the next line was written
        + b"not json\n"
        + record(run="r1", key="c").to_line()
        + record(run="r2", key="d").to_line()[:40]  # torn at the end
    )
    assert [r["key"] for r in iter_records(path)] == ["a", "b", "c"]
    assert [r["key"] for r in iter_records(path, run="r1")] == ["a", "c"]
    assert [r["key"] for r in iter_records(path, run="r2")] == ["b"]
    assert list(iter_records(path, run="r3")) == []


def test_last_run_is_the_run_of_the_last_whole_line(tmp_path):
    path = tmp_path / MANIFEST
    path.write_bytes(b"")
    assert last_run(path) is None
    path.write_bytes(record(run="r1").to_line() + record(run="r2").to_line())
    assert last_run(path) == "r2"
    path.write_bytes(path.read_bytes() + record(run="r3").to_line()[:30])
    assert last_run(path) == "r2"


def test_last_run_reads_past_a_long_tail(tmp_path):
    """Only the end of the file is read, however long the manifest is."""
    path = tmp_path / MANIFEST
    lines = [record(run="r1", key=f"k{n}").to_line() for n in range(2000)]
    path.write_bytes(b"".join(lines) + record(run="r2").to_line())
    assert last_run(path) == "r2"


def test_utc_now_is_iso_8601_to_the_millisecond():
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for _ in range(50):
        assert pattern.match(utc_now())


def test_utc_now_is_close_to_the_clock():
    from datetime import UTC, datetime

    stamp = datetime.strptime(utc_now(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
