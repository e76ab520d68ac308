"""Surviving the real world (C1, C7, C10, C11): kill -9 at several points and resume, signals,
the output-folder lock, and a full disk. Every crawler here is a real subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import CRAWLER_BIN, read_manifest

N_ITEMS = 120
BIG = 16 * 1024 * 1024


def item_body(n: int) -> bytes:
    return (f"item {n}\n" * 40).encode()


def big_body() -> bytes:
    return bytes(i % 253 for i in range(65536)) * (BIG // 65536)


class Counting:
    def __init__(self, delay: float) -> None:
        self.hits: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.delay = delay  # per /item request; a test may change it mid-run


def resume_app(counts: Counting) -> web.Application:
    async def item(request: web.Request) -> web.StreamResponse:
        counts.hits[request.path] += 1
        await asyncio.sleep(counts.delay)
        counts.finished[request.path] += 1
        return web.Response(body=item_body(int(request.match_info["n"])))

    async def big(request: web.Request) -> web.StreamResponse:
        counts.hits[request.path] += 1
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = BIG
        await response.prepare(request)
        body = big_body()
        for start in range(0, BIG, 1 << 20):
            await response.write(body[start : start + (1 << 20)])
            await asyncio.sleep(0.05)
        counts.finished[request.path] += 1
        return response

    async def retry(request: web.Request) -> web.Response:
        counts.hits[request.path] += 1
        if counts.hits[request.path] == 1:
            return web.Response(status=503, headers={"Retry-After": "4"})
        counts.finished[request.path] += 1
        return web.Response(body=b"finally")

    app = web.Application()
    app.router.add_get("/item/{n}", item)
    app.router.add_get("/big", big)
    app.router.add_get("/retry", retry)
    return app


async def start(aiohttp_server, delay: float = 0.02) -> tuple[str, Counting]:
    counts = Counting(delay)
    server = await aiohttp_server(resume_app(counts))
    return str(server.make_url("")).rstrip("/"), counts


def job_text(base: str, extra_urls: list[str] = (), concurrency: int = 4) -> str:
    urls = [f"{base}/item/{n}" for n in range(N_ITEMS)] + list(extra_urls)
    return (
        f"version: 1\nconcurrency: {concurrency}\nper_host: {concurrency}\n"
        "defaults: {save: bytes, retries: 2}\njobs:\n  - name: items\n    urls:\n"
        + "".join(f"      - {u}\n" for u in urls)
    )


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CRAWLER_BIN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def files_of(out: Path) -> dict[str, str]:
    """Every file under the job folders (not .crawler) with its sha256."""
    found = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] != ".crawler" and rel.name != "manifest.jsonl":
            found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def assert_complete(out: Path, base: str, extra: dict[str, bytes]) -> list[dict]:
    """One manifest line per request for the last run, every file complete and right."""
    records = read_manifest(out)
    run = records[-1]["run"]
    mine = [r for r in records if r["run"] == run]
    by_url = Counter(r["url"] for r in mine)
    expected = {f"{base}/item/{n}": item_body(n) for n in range(N_ITEMS)}
    expected.update({f"{base}{path}": body for path, body in extra.items()})
    assert set(by_url) == set(expected)
    assert max(by_url.values()) == 1, "a finished request was recorded twice"
    for record in mine:
        assert record["ok"], record
        assert (out / record["path"]).read_bytes() == expected[record["url"]]
    # Nothing else under the job folder: no temp file, no partial file.
    on_disk = {str(p.relative_to(out)) for p in (out / "items").rglob("*") if p.is_file()}
    assert on_disk == {r["path"] for r in mine}
    return mine


@pytest.mark.parametrize("kill_after", [3, 60, 115])
async def test_kill_9_then_resume(aiohttp_server, write_job, tmp_path, kill_after):
    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.finished.values()) >= kill_after)
    proc.kill()
    await proc.wait()
    before = Counter(counts.hits)

    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    mine = assert_complete(out, base, {})
    assert len({r["run"] for r in mine}) == 1  # the resumed run kept its id
    refetched = sum(1 for path, n in counts.hits.items() if n > 1)
    assert refetched <= 4 + 1, f"more than the in-flight requests were repeated: {refetched}"
    assert sum(before.values()) >= kill_after


async def test_kill_9_during_large_body(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base, [f"{base}/big"]))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: counts.hits["/big"] >= 1)
    await asyncio.sleep(0.3)  # some megabytes into the body
    assert counts.finished["/big"] == 0
    proc.kill()
    await proc.wait()
    # Nothing partial is visible under the job folder.
    for path in (out / "items").rglob("*"):
        assert path.stat().st_size in (
            len(item_body(0)),
            len(item_body(10)),
            len(item_body(100)),
            BIG,
        )
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    assert_complete(out, base, {"/big": big_body()})
    assert not list((out / ".crawler").rglob("*.part"))  # the spilled body's temp is gone


async def test_kill_9_while_retry_waits(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base, [f"{base}/retry"]))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(
        lambda: counts.hits["/retry"] == 1 and sum(counts.finished.values()) >= N_ITEMS
    )
    await asyncio.sleep(0.3)  # everything else is done; /retry waits out its Retry-After
    proc.kill()
    await proc.wait()
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    mine = assert_complete(out, base, {"/retry": b"finally"})
    assert counts.hits["/retry"] == 2
    assert all(n == 1 for path, n in counts.hits.items() if path.startswith("/item/"))
    assert len(mine) == N_ITEMS + 1


async def test_final_files_match_a_clean_run(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base))
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    code, err = await finish(await spawn("run", str(job), "-o", str(clean)))
    assert code == 0, err
    proc = await spawn("run", str(job), "-o", str(resumed))
    await wait_until(lambda: sum(counts.finished.values()) >= N_ITEMS + 40)
    proc.kill()
    await proc.wait()
    code, err = await finish(await spawn("run", str(job), "-o", str(resumed)))
    assert code == 0, err
    assert files_of(clean) == files_of(resumed)


async def test_finished_run_starts_a_new_one_and_fresh_always_does(
    aiohttp_server, write_job, tmp_path
):
    base, counts = await start(aiohttp_server, delay=0)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    for _ in range(2):
        code, _ = await finish(await spawn("run", str(job), "-o", str(out)))
        assert code == 0
    runs = {r["run"] for r in read_manifest(out)}
    assert len(runs) == 2
    assert all(n == 2 for n in counts.hits.values())
    # --fresh after an interrupted run starts anew instead of resuming.
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.finished.values()) >= 2 * N_ITEMS + 10)
    proc.kill()
    await proc.wait()
    code, _ = await finish(await spawn("run", str(job), "-o", str(out), "--fresh"))
    assert code == 0
    assert len({r["run"] for r in read_manifest(out)}) == 4
    last = [r for r in read_manifest(out) if r["run"] == read_manifest(out)[-1]["run"]]
    assert len(last) == N_ITEMS


async def test_edited_job_file_resumes_by_identity(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.finished.values()) >= 50)
    proc.kill()
    await proc.wait()
    # Reorder the URLs and add one: finished requests are skipped, the new one fetched.
    text = job_text(base).splitlines()
    head, urls = text[:7], text[7:]
    job.write_text("\n".join(head + urls[::-1] + [f"      - {base}/retry"]) + "\n")
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    assert_complete(out, base, {"/retry": b"finally"})
    assert sum(1 for p, n in counts.hits.items() if p.startswith("/item/") and n > 1) <= 5


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_signal_lets_inflight_finish_then_exits(
    aiohttp_server, write_job, tmp_path, sig, code
):
    base, counts = await start(aiohttp_server, delay=0.3)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.finished.values()) >= 8)
    proc.send_signal(sig)
    got, err = await finish(proc, timeout=20)
    assert got == code, err
    counts.delay = 0
    # Every request the server answered after the signal is recorded: in flight ones finished.
    records = read_manifest(out)
    assert len(records) == sum(counts.finished.values())
    summary = json.loads((out / ".crawler" / "last.json").read_text())
    assert summary["exit_code"] == code
    got, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert got == 0, err
    assert_complete(out, base, {})
    assert all(n == 1 for n in counts.hits.values())


async def test_second_sigint_cancels_at_once(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server, delay=8)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.hits.values()) >= 4)
    proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.3)
    assert proc.returncode is None  # still waiting for the requests in flight
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    got, err = await finish(proc, timeout=10)
    assert got == 130, err
    assert time.monotonic() - started < 3
    assert read_manifest(out) == []
    summary = json.loads((out / ".crawler" / "last.json").read_text())
    assert summary["exit_code"] == 130


async def test_second_run_on_same_folder_exits_3(aiohttp_server, write_job, tmp_path):
    base, counts = await start(aiohttp_server, delay=0.2)
    job = write_job(job_text(base, concurrency=2))
    other = write_job(
        f"version: 1\njobs:\n  - name: other\n    url: {base}/item/999999\n", "other.yaml"
    )
    out = tmp_path / "out"
    first = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.hits.values()) >= 2)
    started = time.monotonic()
    code, err = await finish(await spawn("run", str(other), "-o", str(out)), timeout=20)
    assert code == 3
    assert str(out) in err
    assert time.monotonic() - started < 5
    assert counts.hits["/item/999999"] == 0
    assert not (out / "other").exists()
    first.kill()
    await first.wait()
    # The lock died with its process: the next run goes ahead.
    code, err = await finish(await spawn("run", str(other), "-o", str(out)))
    assert code == 0, err


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_exits_4_and_resumes(aiohttp_server, write_job, small_disk):
    base, _counts = await start(aiohttp_server, delay=0)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (2 * 1024 * 1024 + 512 * 1024))
    big_items = "".join(f"      - {base}/item/{n}\n" for n in range(N_ITEMS))
    job = write_job(
        "version: 1\nconcurrency: 4\ndefaults: {save: bytes}\njobs:\n  - name: items\n"
        f"    urls:\n{big_items}      - {base}/big\n"
    )
    out = small_disk / "out"
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 4, err
    assert "No space left" in err
    # Whatever landed is whole; the manifest is readable line by line.
    for record in read_manifest(out):
        if record["ok"]:
            assert (out / record["path"]).stat().st_size == record["bytes"]
    ballast.unlink()
    small = small_disk / "out" / "items"
    before = {p.name for p in small.iterdir()} if small.exists() else set()
    # Room for everything but the 16 MiB body: drop it from the job and resume.
    job.write_text(job.read_text().replace(f"      - {base}/big\n", ""))
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    assert_complete(out, base, {})
    assert before <= {p.name for p in small.iterdir()}


async def test_power_loss_tail_is_checked_on_resume(aiohttp_server, write_job, tmp_path):
    """What a power loss can leave: manifest lines past the last state commit whose file data
    never reached the disk, and zeros at the manifest's end. Resume must refetch those."""
    import sqlite3

    base, counts = await start(aiohttp_server)
    job = write_job(job_text(base))
    out = tmp_path / "out"
    proc = await spawn("run", str(job), "-o", str(out))
    await wait_until(lambda: sum(counts.finished.values()) >= 60)
    proc.kill()
    await proc.wait()
    db = sqlite3.connect(out / ".crawler" / "state.sqlite3")
    [(committed,)] = db.execute("SELECT manifest_offset FROM runs").fetchall()
    db.close()
    manifest = (out / "manifest.jsonl").read_bytes()
    tail = [json.loads(line) for line in manifest[committed:].splitlines()]
    if not tail:  # the kill came right after a commit: make one line uncommitted by hand
        db = sqlite3.connect(out / ".crawler" / "state.sqlite3")
        last = json.loads(manifest.splitlines()[-1])
        db.execute("DELETE FROM done WHERE key = ?", (last["key"],))
        db.execute(
            "UPDATE runs SET manifest_offset = ?",
            (len(manifest) - len(manifest.splitlines()[-1]) - 1,),
        )
        db.commit()
        db.close()
        tail = [last]
    lost = tail[-1]
    (out / lost["path"]).write_bytes(b"")  # its data never reached the disk
    with (out / "manifest.jsonl").open("ab") as handle:
        handle.write(b"\0" * 300)
    hits_before = counts.hits[lost["url"].removeprefix(base)]

    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 0, err
    assert counts.hits[lost["url"].removeprefix(base)] == hits_before + 1
    records = read_manifest(out)  # parses: the zeros were cut
    mine = [r for r in records if r["url"] == lost["url"] and r["ok"]]
    assert (out / mine[-1]["path"]).read_bytes() == item_body(int(lost["url"].rsplit("/", 1)[1]))
