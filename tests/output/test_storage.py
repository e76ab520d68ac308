"""Atomic writes under the output folder (C7): a result file appears under its final name only
when complete, temp files stay in OUT/.crawler/tmp, and a folder that refuses writes stops the
run with LocalError."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from crawler.errors import LocalError
from crawler.output.storage import Storage, WriteBatcher


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage(tmp_path: Path):
    storage = Storage(tmp_path / "out")
    storage.prepare()
    yield storage
    storage.close()


def test_prepare_creates_the_temp_folder_and_drops_leftovers(tmp_path):
    """Temp files an interrupted run left behind are gone when the next run starts."""
    out = tmp_path / "out"
    tmp = out / ".crawler" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "1234-0.part").write_bytes(b"half a body")
    (tmp / "nested").mkdir()
    (tmp / "nested" / "x.part").write_bytes(b"x")

    storage = Storage(out)
    storage.prepare()

    assert tmp.is_dir()
    assert list(tmp.iterdir()) == []
    storage.close()


def test_prepare_on_a_new_folder(tmp_path):
    out = tmp_path / "a" / "b"
    storage = Storage(out)
    storage.prepare()
    assert (out / ".crawler" / "tmp").is_dir()
    storage.close()


def test_write_bytes_writes_the_file_and_returns_its_sha256(storage):
    data = b"<html>hello</html>\x00\xff" * 1000
    digest = storage.write_bytes("job/deep/er/page.html", data)
    assert digest == sha256(data)
    assert (storage.out / "job" / "deep" / "er" / "page.html").read_bytes() == data
    assert list(storage.tmp.iterdir()) == []  # no .part left behind


def test_write_bytes_replaces_an_existing_file_whole(storage):
    storage.write_bytes("job/a.txt", b"a much longer first version")
    assert storage.write_bytes("job/a.txt", b"short") == sha256(b"short")
    assert (storage.out / "job" / "a.txt").read_bytes() == b"short"


def test_write_bytes_of_an_empty_body(storage):
    assert storage.write_bytes("job/empty", b"") == sha256(b"")
    assert (storage.out / "job" / "empty").read_bytes() == b""


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_write_into_a_read_only_folder_raises_local_error(storage):
    folder = storage.out / "job"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(LocalError):
            storage.write_bytes("job/a.txt", b"data")
        assert not (folder / "a.txt").exists()
        assert list(storage.tmp.iterdir()) == []
    finally:
        folder.chmod(stat.S_IRWXU)


def test_move_in_computes_size_and_sha256(storage):
    temp = storage.temp_path()
    data = os.urandom(100_000)
    temp.write_bytes(data)
    assert temp.parent == storage.tmp
    assert storage.move_in("job/sub/big.bin", temp) == (len(data), sha256(data))
    assert (storage.out / "job" / "sub" / "big.bin").read_bytes() == data
    assert not temp.exists()


def test_move_in_returns_the_known_size_and_sha256(storage):
    temp = storage.temp_path()
    data = b"streamed body"
    temp.write_bytes(data)
    known = (len(data), sha256(data))
    assert storage.move_in("job/streamed.txt", temp, known) == known
    assert (storage.out / "job" / "streamed.txt").read_bytes() == data
    assert not temp.exists()


def test_temp_paths_are_distinct(storage):
    paths = {storage.temp_path() for _ in range(100)}
    assert len(paths) == 100


def test_append_line_appends_whole_lines(storage):
    storage.append_line("job/items.jsonl", b'{"a":1}\n')
    storage.append_line("job/items.jsonl", b'{"b":2}\n{"c":3}\n')
    storage.append_line("other.jsonl", b"x\n")
    assert (storage.out / "job" / "items.jsonl").read_bytes() == b'{"a":1}\n{"b":2}\n{"c":3}\n'
    assert (storage.out / "other.jsonl").read_bytes() == b"x\n"


def test_append_line_keeps_what_an_earlier_run_wrote(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "items.jsonl").write_bytes(b"earlier\n")
    storage = Storage(out)
    storage.prepare()
    storage.append_line("items.jsonl", b"later\n")
    storage.close()
    assert (out / "items.jsonl").read_bytes() == b"earlier\nlater\n"


def test_close_removes_the_temp_folder(tmp_path):
    out = tmp_path / "out"
    storage = Storage(out)
    storage.prepare()
    storage.write_bytes("job/a.txt", b"a")
    storage.append_line("job/a.jsonl", b"{}\n")
    storage.temp_path().write_bytes(b"abandoned")
    storage.close()
    assert not (out / ".crawler" / "tmp").exists()
    assert (out / "job" / "a.txt").read_bytes() == b"a"
    assert (out / "job" / "a.jsonl").read_bytes() == b"{}\n"


async def test_write_batcher_lands_many_concurrent_writes(storage):
    batcher = WriteBatcher(storage)
    bodies = {f"job/{n % 5}/page-{n}.html": f"body {n} ".encode() * (n + 1) for n in range(50)}
    digests = await asyncio.wait_for(
        asyncio.gather(*(batcher.write(rel, data) for rel, data in bodies.items())), timeout=30
    )
    assert digests == [sha256(data) for data in bodies.values()]
    for rel, data in bodies.items():
        assert (storage.out / rel).read_bytes() == data
    assert list(storage.tmp.iterdir()) == []


async def test_write_batcher_hands_a_failure_to_its_own_caller(storage):
    """One write that fails does not fail the others of its batch."""
    (storage.out / "blocker").write_bytes(b"a file, not a folder")
    batcher = WriteBatcher(storage)
    good, bad, other = await asyncio.wait_for(
        asyncio.gather(
            batcher.write("job/good.txt", b"good"),
            batcher.write("blocker/bad.txt", b"bad"),
            batcher.write("job/other.txt", b"other"),
            return_exceptions=True,
        ),
        timeout=30,
    )
    assert good == sha256(b"good")
    assert other == sha256(b"other")
    assert isinstance(bad, OSError)
    assert (storage.out / "job" / "good.txt").read_bytes() == b"good"
    assert (storage.out / "job" / "other.txt").read_bytes() == b"other"
