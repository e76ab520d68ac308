"""C15: per-host politeness stays exact across shards run at once. Host mode keeps each host
in one shard (per_host, rate_per_host, robots.txt once per host, a crawl inside its start
URL's shard); url mode spreads one host over the shards with per_host and rate_per_host
divided by N. Checked from the server's side."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from . import Farm, Hit, cli, last_json, peak_overlap, read_manifest, write_job


def shard_folder(out: Path, k: int, n: int) -> Path:
    return out / "shards" / f"{k}-of-{n}"


async def run_shards(job: Path, out: Path, n: int, *extra: str) -> None:
    """Shards 0..n-1 of ``job`` as n processes at once; each must exit 0."""
    done = await asyncio.gather(
        *(
            cli("run", str(job), "-o", str(out), "--shard", f"{k}/{n}", "-q", *extra)
            for k in range(n)
        )
    )
    for k, result in enumerate(done):
        assert result.code == 0, (k, result.stderr)


def assert_spaced(starts: list[float], rate: float, what: object, slack: float = 0.1) -> None:
    """At most ``rate`` request starts a second, as the server saw them: any k + 1
    consecutive starts span at least k / rate, less ``slack`` for the server's clock (a busy
    machine, a new connection's setup delaying a first request). Two starts at once, or a
    rate even 1.5 times too high over 5 starts, still fail."""
    assert len(starts) >= 2, what
    for i, j in itertools.combinations(range(len(starts)), 2):
        span = starts[j] - starts[i]
        assert span >= (j - i) / rate - slack, (what, i, j, span, starts)


def starts_by_host(hits: list[Hit]) -> dict[str, list[float]]:
    starts: dict[str, list[float]] = defaultdict(list)
    for hit in hits:
        starts[hit.host].append(hit.start)
    return {host: sorted(times) for host, times in starts.items()}


async def test_per_host_holds_across_concurrent_shards(tmp_path: Path) -> None:
    async with Farm(tmp_path, 30, delay=0.05) as farm:
        urls = farm.items(8)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=16, per_host=2)
        await run_shards(job, tmp_path / "out", 4)
        assert farm.fetched() == Counter(urls)
        assert max(farm.peak.values()) == 2, farm.peak  # reached, never passed


async def test_rate_per_host_holds_across_concurrent_shards(tmp_path: Path) -> None:
    rate = 5.0
    async with Farm(tmp_path, 12) as farm:
        urls = farm.items(5)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=16, rate_per_host=rate)
        await run_shards(job, tmp_path / "out", 4)
        assert farm.fetched() == Counter(urls)
        for host, starts in starts_by_host(farm.hits).items():
            assert len(starts) == 5
            assert_spaced(starts, rate, host)


async def test_crawl_stays_in_its_shard_and_reads_robots_once_per_host(tmp_path: Path) -> None:
    hosts = 8
    async with Farm(tmp_path, hosts) as farm:
        starts = [f"{farm.base(h)}/site/0" for h in range(hosts)]
        job = write_job(
            tmp_path / "job.yaml",
            starts,
            name="crawl",
            save="text",
            job={"follow": {"depth": 2, "scope": "host"}},
            concurrency=8,
        )
        out = tmp_path / "out"
        await run_shards(job, out, 4)

        robots = Counter(h.host for h in farm.hits if h.path == "/robots.txt")
        assert robots == Counter({host: 1 for host in farm.hosts}), robots
        # Pages /site/0../site/6 on every host, each fetched once in all.
        expected = {f"{farm.base(h)}/site/{n}" for h in range(hosts) for n in range(7)}
        assert farm.fetched() == Counter(expected)

        owner: dict[str, int] = {}  # start host -> the shard that has its start URL
        pages: dict[int, list[dict]] = {}
        for k in range(4):
            records = read_manifest(shard_folder(out, k, 4))
            assert last_json(shard_folder(out, k, 4))["exit_code"] == 0
            pages[k] = records
            for record in records:
                if record["depth"] == 0:
                    host = urlsplit(record["url"]).netloc
                    assert host not in owner
                    owner[host] = k
        assert sorted(owner) == sorted(farm.hosts)
        for k, records in pages.items():
            for record in records:
                assert owner[urlsplit(record["url"]).netloc] == k, record["url"]
        assert Counter(r["url"] for rs in pages.values() for r in rs) == Counter(expected)


async def test_shard_by_url_spreads_one_host_and_divides_per_host(tmp_path: Path) -> None:
    async with Farm(tmp_path, 1, delay=0.05) as farm:
        urls = farm.items(100)
        job = write_job(tmp_path / "job.yaml", urls, concurrency=16, per_host=4)
        out = tmp_path / "out"
        await run_shards(job, out, 2, "--shard-by", "url")

        assert farm.fetched() == Counter(urls)
        mine = {k: {r["url"] for r in read_manifest(shard_folder(out, k, 2))} for k in range(2)}
        assert mine[0] and mine[1], "url mode left a shard empty"
        assert not mine[0] & mine[1]
        assert mine[0] | mine[1] == set(urls)
        # per_host 4 over 2 shards: 2 each, so never more than 4 at the host in all.
        [host] = farm.hosts
        assert farm.peak[host] <= 4
        for k in range(2):
            hits = [h for h in farm.hits if h.url in mine[k]]
            assert peak_overlap(hits) == 2, k  # reached, never passed
            assert last_json(shard_folder(out, k, 2))["shard_by"] == "url"


async def test_shard_by_url_divides_rate_per_host(tmp_path: Path) -> None:
    rate = 10.0
    async with Farm(tmp_path, 1) as farm:
        urls = farm.items(12)
        job = write_job(tmp_path / "job.yaml", urls, rate_per_host=rate)
        out = tmp_path / "out"
        await run_shards(job, out, 2, "--shard-by", "url")
        assert farm.fetched() == Counter(urls)
        checked = 0
        for k in range(2):
            mine = {r["url"] for r in read_manifest(shard_folder(out, k, 2))}
            if len(mine) < 2:
                continue  # ports differ run to run, and so does the split: the other has 11
            checked += 1
            starts = sorted(h.start for h in farm.hits if h.url in mine)
            assert_spaced(starts, rate / 2, f"shard {k}-of-2")  # rate / 2 per shard
        assert checked


async def test_shard_by_url_with_per_host_below_n_is_a_usage_error(tmp_path: Path) -> None:
    async with Farm(tmp_path, 1) as farm:
        job = write_job(tmp_path / "job.yaml", farm.items(10), per_host=1)
        out = tmp_path / "out"
        workers_out = tmp_path / "workers-out"
        run, workers, validate = await asyncio.gather(
            cli("run", str(job), "-o", str(out), "--shard", "0/2", "--shard-by", "url"),
            cli("run", str(job), "-o", str(workers_out), "--workers", "2", "--shard-by", "url"),
            cli("validate", str(job), "--shards", "2", "--shard-by", "url"),
        )
        for result in (run, workers):
            assert result.code == 2, result.stderr
            assert "per_host" in result.stderr
        assert not workers_out.exists()
        assert validate.code == 2, validate.stderr
        assert "per_host" in validate.stderr
        assert not out.exists()
        assert farm.hits == []
