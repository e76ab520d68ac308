"""kill -9 in the middle of a save: warc run, several times, with files rolling over during the
run (CRAWLER_WARC_MAX_BYTES lowered), then a resume to the end (C10, C16): every file reads to
its end, each request's exchange is in the run's files exactly once, the files are numbered
without a gap and each starts with warcinfo, and the manifest's offsets open the right
records."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

from ..conftest import CRAWLER_BIN, read_manifest
from .readers import cdxj, members, read_fastwarc, read_warcio, record_at

N = 400
MAX_BYTES = 20_000  # about a dozen exchanges a file: many roll-overs in one run


def noisy_body(n: int) -> bytes:
    """A body that does not compress away, so files fill up."""
    seed = hashlib.sha256(str(n).encode()).digest()
    return b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(40))  # 1280 B


def noisy_app(counts: Counter[str], delay: list[float]):  # type: ignore[no-untyped-def]
    from aiohttp import web

    async def item(request: web.Request) -> web.Response:
        counts["started"] += 1
        await asyncio.sleep(delay[0])
        counts["served"] += 1
        return web.Response(body=noisy_body(int(request.match_info["n"])))

    app = web.Application()
    app.router.add_get("/item/{n}", item)
    return app


async def spawn(job: Path, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CRAWLER_BIN, "run", str(job), "-o", str(out), "-q",
        env={**os.environ, "CRAWLER_WARC_MAX_BYTES": str(MAX_BYTES)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_kill_9_mid_run_several_times_then_resume(aiohttp_server, tmp_path):
    counts: Counter[str] = Counter()
    delay = [0.03]
    server = await aiohttp_server(noisy_app(counts, delay))
    urls = [str(server.make_url(f"/item/{n}")) for n in range(N)]
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "concurrency": 16,
                "per_host": 16,
                "defaults": {"save": "warc", "retries": 0},
                "jobs": [{"name": "items", "urls": urls}],
            }
        )
    )
    out = tmp_path / "out"
    kills = 0
    for target in (60, 150, 250, 330):
        proc = await spawn(job, out)
        deadline = time.monotonic() + 30
        while counts["served"] < target:
            assert proc.returncode is None, (await proc.communicate())[1].decode()
            assert time.monotonic() < deadline, f"the run did not reach {target} responses"
            await asyncio.sleep(0.002)
        proc.kill()
        await proc.wait()
        kills += 1
        # What a killed run leaves: files that may end in a torn member; never a gap.
        names = sorted(p.name for p in (out / "items").iterdir())
        assert names, "nothing archived before the kill"
    assert kills == 4
    lines = read_manifest(out)
    assert len(lines) < N, "the run finished before the last kill"
    delay[0] = 0.0
    proc = await spawn(job, out)
    _, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()

    lines = read_manifest(out)
    runs = {line["run"] for line in lines}
    assert len(runs) == 1, "the resumed runs kept one id"
    (run,) = runs
    assert Counter(line["url"] for line in lines) == Counter(urls)  # each line once

    files = sorted((out / "items").iterdir())
    assert [p.name for p in files] == [f"items-{run}-{n:05d}.warc.gz" for n in range(len(files))], (
        "files numbered 00000, 00001, ... without a gap, and nothing else in the folder"
    )
    assert len(files) >= 10, "the run rolled over to new files"
    responses: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for path in files:
        records = read_warcio(path)  # reads to the end: no torn record; digests verified
        assert len(members(path)) == len(records)
        fast = read_fastwarc(path)
        assert len(fast) == len(records)
        assert all(f.block_ok and f.payload_ok for f in fast)
        assert records[0].type == "warcinfo", path.name
        assert [r.type for r in records].count("warcinfo") == 1
        assert records[0].headers["WARC-Filename"] == path.name
        responses.update(r.uri for r in records if r.type == "response")
        requests.update(r.uri for r in records if r.type == "request")
    assert responses == Counter(urls), "a request archived twice, or not at all"
    assert requests == Counter(urls)
    for path in files[:-1]:
        assert path.stat().st_size > MAX_BYTES, f"{path.name} rolled over before it was full"
    for line in lines:
        record = record_at(out / line["path"], line["warc_offset"], line["warc_length"])
        assert record.type == "response"
        assert record.uri == line["url"]
        n = int(line["url"].rsplit("/", 1)[1])
        assert record.payload == noisy_body(n)
        assert line["sha256"] == hashlib.sha256(record.payload).hexdigest()
    indexed = Counter(fields["url"] for _, _, fields in cdxj(files))
    assert indexed == Counter(urls)
    assert counts["started"] >= N  # the requests in flight at each kill were fetched again


async def test_roll_over_under_concurrency_keeps_each_exchange_in_its_file(
    aiohttp_server, tmp_path
):
    """Many exchanges in flight while files roll over: each lands whole in the file its
    manifest line names, and every file starts with its warcinfo."""
    counts: Counter[str] = Counter()
    server = await aiohttp_server(noisy_app(counts, [0.0]))
    urls = [str(server.make_url(f"/item/{n}")) for n in range(300)]
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "concurrency": 32,
                "per_host": 32,
                "defaults": {"save": "warc", "retries": 0},
                "jobs": [{"name": "items", "urls": urls}],
            }
        )
    )
    out = tmp_path / "out"
    proc = await spawn(job, out)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    files = sorted((out / "items").iterdir())
    assert len(files) >= 15
    uris: Counter[str] = Counter()
    for path in files:
        records = read_warcio(path)
        assert [r.type for r in records][:1] == ["warcinfo"], path.name
        assert [r.type for r in records].count("warcinfo") == 1, path.name
        uris.update(r.uri for r in records if r.type == "response")
    assert uris == Counter(urls)
    for line in read_manifest(out):
        record = record_at(out / line["path"], line["warc_offset"], line["warc_length"])
        assert record.uri == line["url"]
