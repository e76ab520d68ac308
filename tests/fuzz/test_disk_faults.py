"""Disk faults (issue 12, C1, C7, C10): the output folder turning read-only mid-run, the disk
filling up, file names the file system would reject, and the run state deleted or corrupted
between runs. Each ends with a clear message and its exit code, never a traceback, nothing
partial on disk, and (for 4) a next run that resumes and finishes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from ..conftest import CRAWLER_BIN
from .chaos_site import ChaosSite, any_body, medium_body, small_body

ENV = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def site() -> Iterator[ChaosSite]:
    with ChaosSite() as chaos:
        yield chaos


def write_job(folder: Path, urls: list[str], out: Path, **job: Any) -> Path:
    (folder / "urls.txt").write_text("\n".join(urls) + "\n")
    entry = {"name": "j", "urls_file": "urls.txt", "save": "bytes", "retries": 0, **job}
    top = {"version": 1, "output": str(out), "concurrency": 4, "per_host": 4, "jobs": [entry]}
    path = folder / "job.yaml"
    path.write_text(json.dumps(top))
    return path


def start(job: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CRAWLER_BIN, "run", str(job), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=job.parent,
    )


def run(job: Path, timeout: float = 120) -> tuple[int, str]:
    done = subprocess.run(
        [CRAWLER_BIN, "run", str(job), "--no-progress"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=job.parent,
        timeout=timeout,
    )
    return done.returncode, done.stderr


def manifest(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_lines(out: Path, count: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(manifest(out)) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"crawler ended early ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} manifest lines after {timeout} s")


def check_saved(out: Path, expected: dict[str, bytes], complete: bool) -> list[dict[str, Any]]:
    """Every manifest line's file is whole and as sent; no temp or partial file anywhere;
    with ``complete``, exactly one line per URL, all of one run, all ok."""
    records = manifest(out)
    for record in records:
        if record["path"] is not None:
            data = (out / record["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == record["sha256"], record
            assert data == expected[record["url"]]
    named = {r["path"] for r in records if r["path"]}
    # A run stopped by a full disk may have put a file in place whose manifest line it then
    # could not write (file first, then line: C7); the resume fetches it again and writes both.
    for path in (out / "j").rglob("*") if complete else ():
        if path.is_file():
            assert str(path.relative_to(out)) in named, f"a file without a manifest line: {path}"
    assert not list(out.rglob("*.part"))
    if complete:
        assert Counter(r["url"] for r in records) == Counter(set(expected)), "one line per URL"
        assert len({r["run"] for r in records}) == 1, "the run resumed under its id (C10)"
        assert all(r["ok"] for r in records)
        tmp = out / ".crawler" / "tmp"
        assert not tmp.exists() or not any(tmp.iterdir())
    return records


# --- the output folder turns read-only mid-run --------------------------------------------------


def _set_immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(out: Path) -> Iterator[None]:
    """Every folder under OUT read-only: chmod a-w, or for root (whom permissions do not stop)
    the immutable attribute, which stops root too. Files open already stay writable, as on a
    file system remounted read-only under a running process... which Linux refuses (EBUSY)."""
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    if os.geteuid() != 0:
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield
        finally:
            for folder in folders:
                folder.chmod(0o755)
        return
    done: list[Path] = []
    try:
        for folder in folders:
            _set_immutable(folder, True)
            done.append(folder)
        yield
    finally:
        for folder in done:
            _set_immutable(folder, False)


def can_make_read_only(tmp_path: Path) -> str | None:
    """Why this machine cannot make a folder read-only for this user, or None."""
    if os.geteuid() != 0:
        return None
    if shutil.which("chattr") is None:
        return "root ignores permissions, and chattr (for the immutable attribute) is missing"
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _set_immutable(probe, True)
    except subprocess.CalledProcessError as exc:
        return f"root ignores permissions, and chattr +i fails here: {exc.stderr.decode()}"
    try:
        (probe / "x").touch()
    except PermissionError:
        return None
    finally:
        _set_immutable(probe, False)
    return "root ignores permissions, and the immutable attribute does not stop it here"


def test_output_folder_turns_read_only_mid_run(site: ChaosSite, tmp_path: Path) -> None:
    why = can_make_read_only(tmp_path)
    if why:
        pytest.skip(why)
    paths = [f"/s/{n}" for n in range(400)]
    expected = {site.url(p): small_body(int(p[3:])) for p in paths}
    out = tmp_path / "out"
    job = write_job(tmp_path, list(expected), out)
    site.delay = 0.05
    try:
        proc = start(job)
        wait_for_lines(out, 20, proc)
        with read_only(out):
            _, stderr = proc.communicate(timeout=60)
        code = proc.returncode
    finally:
        site.delay = 0
    assert code == 4, stderr
    assert "Traceback" not in stderr, stderr
    assert "cannot write" in stderr and ("Permission denied" in stderr or "not permitted" in stderr)
    check_saved(out, expected, complete=False)

    code, stderr = run(job)  # writable again: the next run resumes (C1)
    assert code == 0, stderr
    check_saved(out, expected, complete=True)


# --- the disk fills up --------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a full disk: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.skipif(sys.platform != "linux", reason="mounts a tmpfs")
@pytest.mark.parametrize(
    "job_keys",
    [{}, {"filename": "{index}/{path}"}],  # a template: each name also claimed in the state
    ids=["default-names", "template"],
)
def test_disk_full_stops_with_4_then_resumes(
    site: ChaosSite, tmp_path: Path, job_keys: dict[str, str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full disk needs root")
    paths = [f"/m/{n}" for n in range(100)]  # 100 x 64 KiB on a 2 MiB disk
    expected = {site.url(p): medium_body(int(p[3:])) for p in paths}
    with tiny_disk(tmp_path / "disk", "2m") as disk:
        out = disk / "out"
        job = write_job(tmp_path, list(expected), out, **job_keys)
        code, stderr = run(job)
        assert code == 4, stderr
        assert "Traceback" not in stderr, stderr
        assert "No space left on device" in stderr or "disk is full" in stderr, stderr
        records = check_saved(out, expected, complete=False)
        assert 0 < len(records) < len(paths)

        grow = ["mount", "-o", "remount,size=64m", str(disk)]
        subprocess.run(grow, check=True, capture_output=True)
        code, stderr = run(job)
        assert code == 0, stderr
        check_saved(out, expected, complete=True)


# --- names the file system would reject ---------------------------------------------------------


def test_names_too_long_or_clashing_still_save(site: ChaosSite, tmp_path: Path) -> None:
    """A {path} component of 300 characters, or of 300 two-byte ones (600 bytes; ext4 takes
    255), is cut to a name the file system takes; a request whose file would be another's
    folder (/x, then /x/y) is saved under its default name; every one is saved."""
    paths = ["/any/" + "n" * 300, "/any/" + "é" * 300, "/any/x", "/any/x/y", "/any/" + "a/" * 40]
    urls = [str(URL(site.url(p))) for p in paths]  # as the manifest writes them
    out = tmp_path / "out"
    job = write_job(tmp_path, urls, out, filename="{path}")
    code, stderr = run(job)
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    records = manifest(out)
    assert sorted(r["url"] for r in records) == sorted(urls)
    for record in records:
        for part in Path(record["path"]).parts:
            assert len(part) <= 200 and len(part.encode()) <= 255, part
        assert (out / record["path"]).read_bytes() == any_body(URL(record["url"]).raw_path)
    assert len({r["path"] for r in records}) == len(records)


# --- the run state deleted or corrupted between runs --------------------------------------------


def interrupted_run(site: ChaosSite, tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A run stopped by SIGTERM after some requests: an unfinished run to resume."""
    paths = [f"/s/{n}" for n in range(200)]
    expected = {site.url(p): small_body(int(p[3:])) for p in paths}
    out = tmp_path / "out"
    job = write_job(tmp_path, list(expected), out)
    site.delay = 0.05
    try:
        proc = start(job)
        wait_for_lines(out, 10, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        site.delay = 0
    assert proc.returncode == 143, stderr
    return job, out, expected


def test_state_deleted_between_runs(site: ChaosSite, tmp_path: Path) -> None:
    """Without its state the folder holds no unfinished run: the next run starts a new one and
    fetches everything again (the old run's lines stay in the manifest); no traceback."""
    job, out, expected = interrupted_run(site, tmp_path)
    first = manifest(out)
    for path in (out / ".crawler").glob("state.sqlite3*"):
        path.unlink()
    code, stderr = run(job)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    records = manifest(out)[len(first) :]
    assert Counter(r["url"] for r in records) == Counter(set(expected))
    assert {r["run"] for r in records}.isdisjoint({r["run"] for r in first})
    for record in records:
        assert (out / record["path"]).read_bytes() == expected[record["url"]]


GARBAGE = {  # (random bytes and a torn SQLite header fail the same way: not worth 4 s in CI)
    "text": b"this is not a database\n",
    "zeros": bytes(4096),
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_state_corrupted_between_runs(site: ChaosSite, tmp_path: Path, garbage: str) -> None:
    job, out, _ = interrupted_run(site, tmp_path)
    for path in (out / ".crawler").glob("state.sqlite3-*"):
        path.unlink()
    (out / ".crawler" / "state.sqlite3").write_bytes(GARBAGE[garbage])
    code, stderr = run(job)
    assert "Traceback" not in stderr, stderr
    assert code in (2, 4), stderr
    [line] = [x for x in stderr.splitlines() if "state" in x]
    assert "state.sqlite3" in line
