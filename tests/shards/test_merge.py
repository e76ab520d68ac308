"""C15: `crawler merge OUT [--shards N]` merges only when every shard 0..N-1 has finished:
a missing, running or unfinished shard is exit 5 naming it as K-of-N, with nothing written;
no shard folders, or two different N without --shards, is exit 2. A shard killed with
SIGKILL resumes with the same command and then merges with each request once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from . import (
    Farm,
    cli,
    last_json,
    lines_in,
    read_manifest,
    records_so_far,
    runs_of,
    shard_dirs,
    wait_until,
    write_job,
)


async def test_merge_refuses_missing_shards_and_mixed_n(tmp_path: Path) -> None:
    async with Farm(tmp_path, 12) as farm:
        urls = farm.items(3)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=8)
        out = tmp_path / "out"
        runs = await asyncio.gather(
            *(
                cli("run", str(job), "-o", str(out), "--shard", spec, "-q")
                for spec in ("0/3", "2/3", "0/2", "1/2")
            )
        )
        assert [r.code for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
        assert shard_dirs(out) == ["0-of-2", "0-of-3", "1-of-2", "2-of-3"]
        (tmp_path / "empty").mkdir()

        mixed, missing, empty, nowhere = await asyncio.gather(
            cli("merge", str(out)),
            cli("merge", str(out), "--shards", "3"),
            cli("merge", str(tmp_path / "empty")),
            cli("merge", str(tmp_path / "nowhere")),
        )
        assert mixed.code == 2, mixed.stderr
        assert "--shards" in mixed.stderr
        assert missing.code == 5, missing.stderr
        assert "1-of-3" in missing.stderr
        assert "0-of-3" not in missing.stderr and "2-of-3" not in missing.stderr
        assert empty.code == 2, empty.stderr
        assert nowhere.code == 2, nowhere.stderr
        assert not (out / "manifest.jsonl").exists()
        assert not (out / ".crawler" / "last.json").exists()
        assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == []
        assert not (tmp_path / "nowhere").exists()

        merged = await cli("merge", str(out), "--shards", "2")
        assert merged.code == 0, merged.stderr
        assert Counter(r["url"] for r in read_manifest(out)) == Counter(urls)
        summary = last_json(out)
        assert summary["shards"] == 2
        assert summary["requests"] == len(urls)
        assert runs_of(summary) == {
            last_json(out / "shards" / f"{k}-of-2")["run"] for k in range(2)
        }


async def test_merge_waits_for_a_running_or_killed_shard_which_then_resumes(
    tmp_path: Path,
) -> None:
    async with Farm(tmp_path, 10) as farm:
        urls = farm.items(12)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=2)
        out = tmp_path / "out"
        shard1 = out / "shards" / "1-of-2"
        first = await cli("run", str(job), "-o", str(out), "--shard", "0/2", "-q")
        assert first.code == 0, first.stderr
        hits_before = len(farm.hits)

        # Shard 1 against a slow server: merge while it runs.
        farm.delay = 0.15
        slow = await farm.spawn("run", str(job), "-o", str(out), "--shard", "1/2", "-q")
        await wait_until(lambda: lines_in(shard1 / "manifest.jsonl") >= 3, what="3 lines")
        running = await cli("merge", str(out))
        assert slow.proc.returncode is None, "shard 1 finished too soon for this test"
        assert running.code == 5, running.stderr
        assert "1-of-2" in running.stderr
        assert "0-of-2" not in running.stderr
        assert not (out / "manifest.jsonl").exists()

        # SIGKILL it mid-run: unfinished, still no merge.
        await wait_until(lambda: len(farm.hits) - hits_before >= 10, what="10 requests")
        slow.kill()
        await slow.finish(timeout=10)
        before = records_so_far(shard1)
        assert before and len(before) < len(urls)
        [run_id] = {r["run"] for r in before}
        unfinished = await cli("merge", str(out))
        assert unfinished.code == 5, unfinished.stderr
        assert "1-of-2" in unfinished.stderr
        assert not (out / "manifest.jsonl").exists()

        # The same command resumes that run; then the merge goes through.
        farm.delay = 0
        again = await cli("run", str(job), "-o", str(out), "--shard", "1/2", "-q")
        assert again.code == 0, again.stderr
        assert last_json(shard1)["run"] == run_id
        assert {r["run"] for r in read_manifest(shard1)} == {run_id}
        merged = await cli("merge", str(out))
        assert merged.code == 0, merged.stderr
        assert Counter(r["url"] for r in read_manifest(out)) == Counter(urls)
        fetched = farm.fetched()
        assert set(fetched) == set(urls)
        assert sum(1 for n in fetched.values() if n > 1) <= 2  # shard 1's concurrency
        assert max(fetched.values()) <= 2
