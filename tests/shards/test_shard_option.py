"""C15: `--shard K/N` refuses K outside 0..N-1 (exit 2, nothing written or fetched), and
`--shard auto` takes K and N from Kubernetes Indexed Jobs, Slurm arrays and AWS Batch arrays,
refusing, with the variables it looked for named, whatever does not add up. Each process
gets a clean environment (no scheduler variable inherited from the one running the tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from . import Farm, clean_env, cli, last_json, read_manifest, shard_dirs, write_job

LOOKED_FOR = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "AWS_BATCH_JOB_ARRAY_INDEX")


async def test_shard_outside_range_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    async with Farm(tmp_path, 4) as farm:
        job = write_job(tmp_path / "job.yaml", farm.items(2))
        specs = [
            ["--shard", "4/4"],
            ["--shard=-1/2"],
            ["--shard", "x"],
        ]
        outs = [tmp_path / f"out{i}" for i in range(len(specs))]
        *done, dry = await asyncio.gather(
            *(
                cli("run", str(job), "-o", str(out), *spec)
                for spec, out in zip(specs, outs, strict=True)
            ),
            # --dry-run too: a bad shard is refused before anything is listed.
            cli("run", str(job), "--dry-run", "--shard", "3/3"),
        )
        for spec, out, result in zip(specs, outs, done, strict=True):
            assert result.code == 2, (spec, result.stderr)
            assert "shard" in result.stderr.lower(), (spec, result.stderr)
            assert not out.exists(), spec
        assert dry.code == 2
        assert dry.stdout == ""
        assert farm.hits == []


AUTO_OK = [
    ({"JOB_COMPLETION_INDEX": "1", "CRAWLER_SHARDS": "3"}, "1-of-3"),
    (
        {
            "SLURM_ARRAY_TASK_ID": "5",
            "SLURM_ARRAY_TASK_MIN": "4",
            "SLURM_ARRAY_TASK_MAX": "6",
            "SLURM_ARRAY_TASK_COUNT": "3",
            "SLURM_ARRAY_JOB_ID": "9001",
        },
        "1-of-3",
    ),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}, "2-of-3"),
]


async def test_shard_auto_reads_each_scheduler(tmp_path: Path) -> None:
    async with Farm(tmp_path, 12) as farm:
        job = write_job(tmp_path / "job.yaml", farm.items(2), concurrency=8)
        outs = [tmp_path / f"out{i}" for i in range(len(AUTO_OK))]
        runs = await asyncio.gather(
            *(
                cli("run", str(job), "-o", str(out), "--shard", "auto", "-q", env=clean_env(**env))
                for (env, _), out in zip(AUTO_OK, outs, strict=True)
            )
        )
        got = []
        for (env, name), out, result in zip(AUTO_OK, outs, runs, strict=True):
            assert result.code == 0, (env, result.stderr)
            assert shard_dirs(out) == [name], env
            folder = out / "shards" / name
            summary = last_json(folder)
            assert (summary["shard"], summary["shards"]) == (int(name[0]), 3)
            got.append({r["url"] for r in read_manifest(folder)})
        # Kubernetes' and Slurm's 1-of-3 fetched the same requests; AWS's 2-of-3 others.
        k8s, slurm_, aws = got
        assert k8s == slurm_
        assert k8s and aws and not k8s & aws


def slurm(task: int, low: int, high: int, count: int, **more: str) -> dict[str, str]:
    return {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_MIN": str(low),
        "SLURM_ARRAY_TASK_MAX": str(high),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        **more,
    }


# (what, environment, variables the message must name)
AUTO_REFUSED = [
    ("nothing set", {}, LOOKED_FOR),
    ("k8s index without count", {"JOB_COMPLETION_INDEX": "0"}, ("CRAWLER_SHARDS",)),
    (
        "k8s index out of range",
        {"JOB_COMPLETION_INDEX": "3", "CRAWLER_SHARDS": "3"},
        ("JOB_COMPLETION_INDEX",),
    ),
    (
        "two schedulers",
        {
            "JOB_COMPLETION_INDEX": "0",
            "CRAWLER_SHARDS": "2",
            "AWS_BATCH_JOB_ARRAY_INDEX": "0",
            "AWS_BATCH_JOB_ARRAY_SIZE": "2",
        },
        ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"),
    ),
    (
        "stepped slurm array",
        slurm(0, 0, 4, 3, SLURM_ARRAY_TASK_STEP="2"),
        ("SLURM_ARRAY_TASK_STEP",),
    ),
    ("sparse slurm array", slurm(4, 1, 7, 3), ("SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX")),
]


async def test_shard_auto_refusals_exit_2_naming_variables(tmp_path: Path) -> None:
    async with Farm(tmp_path, 2) as farm:
        job = write_job(tmp_path / "job.yaml", farm.items(2))
        outs = [tmp_path / f"out{i}" for i in range(len(AUTO_REFUSED))]
        *done, dry = await asyncio.gather(
            *(
                cli("run", str(job), "-o", str(out), "--shard", "auto", env=clean_env(**env))
                for (_, env, _), out in zip(AUTO_REFUSED, outs, strict=True)
            ),
            cli("run", str(job), "--dry-run", "--shard", "auto"),
        )
        for (what, _, names), out, result in zip(AUTO_REFUSED, outs, done, strict=True):
            assert result.code == 2, (what, result.stderr)
            for name in names:
                assert name in result.stderr, (what, name, result.stderr)
            assert not out.exists(), what
        assert dry.code == 2, dry.stderr
        assert dry.stdout == ""
        assert all(name in dry.stderr for name in LOOKED_FOR), dry.stderr
        assert farm.hits == []
