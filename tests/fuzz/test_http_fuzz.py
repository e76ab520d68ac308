"""Generated HTTP replies (issue 12, C8, C12): a raw server answers each URL of a batch with
generated status lines, headers and bodies; crawler runs the batch in process. Every request
gets exactly one manifest line, its error kind (if any) is one of the table's, every saved file
matches its line, nothing temporary is left, no traceback, and the run exits 0 or 1."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.cli import main
from crawler.outcome import KINDS

from .conftest import examples
from .rawhttp import (
    METHODS,
    SAVE_MODES,
    RawServer,
    finish,
    job_entry,
    job_file_text,
    replies,
)

_ids = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    with RawServer() as raw:
        yield raw


def run_in_process(job: Path, out: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(job), "-o", str(out), "--no-progress"])
    return code, err.getvalue()


def check_output(out: Path, urls: list[str]) -> list[dict[str, Any]]:
    manifest = out / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["url"] for r in records) == sorted(urls), "not one line per request"
    assert len({r["run"] for r in records}) == 1
    kinds = {str(kind) for kind in KINDS}
    for record in records:
        error = record["error"]
        if record["ok"]:
            assert error is None, record
        else:
            assert error is not None and error["kind"] in kinds, record
            assert isinstance(error["message"], str)
        assert record["status"] is None or isinstance(record["status"], int)
        if record["path"] is not None and not record["path"].endswith(".jsonl"):
            saved = out / record["path"]
            data = saved.read_bytes()
            assert len(data) == record["bytes"], record
            assert hashlib.sha256(data).hexdigest() == record["sha256"], record
    assert not list(out.rglob("*.part"))
    tmp = out / ".crawler" / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
    for jsonl in out.glob("*.jsonl"):  # the manifest and save: jsonl files: whole lines
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            json.loads(line)
    return records


BATCHES = st.lists(replies(), min_size=1, max_size=8)


@settings(max_examples=examples(0.25, at_least=6))
@given(
    batch=BATCHES,
    save=SAVE_MODES,
    method=METHODS,
    small_limit=st.booleans(),
    split=st.booleans(),
)
def test_any_reply_gets_one_manifest_line_with_a_known_kind(
    server: RawServer,
    batch: list[Any],
    save: str,
    method: str,
    small_limit: bool,
    split: bool,
) -> None:
    n = next(_ids)
    paths = [f"/r/{n}-{i}" for i in range(len(batch))]
    for i, reply in enumerate(batch):
        self_url = server.url(paths[i])
        next_url = server.url(paths[(i + 1) % len(paths)])
        server.routes[paths[i]] = finish(reply, self_url, next_url)
    urls = [server.url(p) for p in paths]
    max_bytes = 100_000 if small_limit else 1 << 30
    if split and len(urls) > 1:  # two jobs sharing the pool, one text and one bytes
        jobs = [
            job_entry("a", urls[::2], save, method, max_bytes),
            job_entry("b", urls[1::2], "bytes" if save != "bytes" else "text", "GET", max_bytes),
        ]
    else:
        jobs = [job_entry("a", urls, save, method, max_bytes)]
    with tempfile.TemporaryDirectory(prefix="crawler-http-") as tmp:
        job = Path(tmp) / "job.yaml"
        job.write_text(job_file_text(jobs), encoding="utf-8")
        out = Path(tmp) / "out"
        code, stderr = run_in_process(job, out)
        assert code in (0, 1), stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-5000:]
        assert "internal error" not in stderr, stderr[-3000:]
        assert "unexpected" not in stderr, stderr[-3000:]
        check_output(out, urls)
