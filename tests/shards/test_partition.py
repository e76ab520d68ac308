"""C15: every request in exactly one shard of N, by a stable hash; `--shard K/N` output
folders, `crawler merge`, `crawler validate --shards` and `crawler report` on a merged
folder."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from . import (
    Farm,
    clean_env,
    cli,
    dry_urls,
    item_body,
    last_json,
    read_manifest,
    runs_of,
    sha256,
    shard_dirs,
    write_job,
)

HOSTS = 30


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


async def test_four_shards_by_hand_then_merge_then_report(tmp_path: Path) -> None:
    async with Farm(tmp_path, HOSTS) as farm:
        # 30 hosts with 4 to 15 URLs each: 285 requests.
        urls = farm.items([4 + (h * 7) % 12 for h in range(HOSTS)])
        job = write_job(tmp_path / "job.yaml", urls, concurrency=16, per_host=4)
        out = tmp_path / "out"
        done = await asyncio.gather(
            *(cli("run", str(job), "-o", str(out), "--shard", f"{k}/4", "-q") for k in range(4))
        )
        for k, result in enumerate(done):
            assert result.code == 0, (k, result.stderr)

        # Each shard is a complete output folder of its own; OUT holds nothing else yet.
        assert os.listdir(out) == ["shards"]
        assert shard_dirs(out) == [f"{k}-of-4" for k in range(4)]
        by_shard: dict[int, list[dict]] = {}
        for k in range(4):
            folder = out / "shards" / f"{k}-of-4"
            assert (folder / "manifest.jsonl").is_file()
            records = read_manifest(folder)
            summary = last_json(folder)
            assert summary["shard"] == k
            assert summary["shards"] == 4
            assert summary["exit_code"] == 0
            assert summary["requests"] == len(records) == summary["ok"]
            assert {r["run"] for r in records} == {summary["run"]}
            for record in records:
                assert (folder / record["path"]).read_bytes() == item_body(
                    urlsplit(record["url"]).netloc, int(record["url"].rsplit("/", 1)[1])
                )
            by_shard[k] = records
        assert all(by_shard.values()), "a shard got nothing out of 30 hosts"

        # The union is every request, each in exactly one shard; the server agrees.
        seen = Counter(r["url"] for records in by_shard.values() for r in records)
        assert set(seen) == set(urls)
        assert max(seen.values()) == 1
        assert farm.fetched() == Counter(urls)
        # Host mode: every host in exactly one shard.
        shards_of_host: dict[str, set[int]] = defaultdict(set)
        for k, records in by_shard.items():
            for record in records:
                shards_of_host[host_of(record["url"])].add(k)
        assert len(shards_of_host) == HOSTS
        assert all(len(shards) == 1 for shards in shards_of_host.values()), shards_of_host

        # Merge: one line per request, paths relative to OUT, counts summed.
        merged = await cli("merge", str(out))
        assert merged.code == 0, merged.stderr
        lines = read_manifest(out)
        assert len(lines) == len(urls)
        assert Counter(r["url"] for r in lines) == Counter(urls)
        for record in lines:
            assert not Path(record["path"]).is_absolute()
            assert sha256(out / record["path"]) == record["sha256"]
        summary = last_json(out)
        shard_summaries = [last_json(out / "shards" / f"{k}-of-4") for k in range(4)]
        for key in ("requests", "ok", "failed", "bytes"):
            assert summary[key] == sum(s[key] for s in shard_summaries), key
        assert summary["requests"] == len(urls)
        assert summary["bytes"] == sum(r["bytes"] for r in lines)
        for key in ("by_kind", "by_status"):
            total: Counter[str] = Counter()
            for s in shard_summaries:
                total.update({str(k): v for k, v in s[key].items()})
            assert {str(k): v for k, v in summary[key].items()} == dict(total), key
        assert summary["exit_code"] == 0
        assert summary["shards"] == 4
        assert runs_of(summary) == {s["run"] for s in shard_summaries}
        for key in ("run", "started_at", "finished_at", "duration_s", "requests_per_s"):
            assert key in summary

        # C17 through C15: the report of the merged folder counts the merged lines.
        report = await cli("report", str(out))
        assert report.code == 0, report.stderr
        page = Path(report.stdout.strip().splitlines()[-1])
        if not page.is_absolute():
            page = Path.cwd() / page
        html = page.read_text("utf-8")
        assert re.search(rf"\b{len(lines):,}\b\D{{0,40}}requests", html), "count not in report"


async def test_failed_requests_merge_to_exit_1_with_kinds_summed(tmp_path: Path) -> None:
    async with Farm(tmp_path, 6) as farm:
        urls = farm.items(3) + [f"{farm.base(h)}/status/404" for h in range(6)]
        urls += [f"{farm.base(0)}/status/500"]
        job = write_job(tmp_path / "job.yaml", urls, concurrency=8)
        out = tmp_path / "out"
        done = await asyncio.gather(
            *(cli("run", str(job), "-o", str(out), "--shard", f"{k}/2", "-q") for k in range(2))
        )
        assert {d.code for d in done} <= {1, 0} and 1 in {d.code for d in done}
        merged = await cli("merge", str(out))
        assert merged.code == 1, merged.stderr
        summary = last_json(out)
        assert summary["exit_code"] == 1
        assert summary["requests"] == len(urls)
        assert summary["failed"] == 7
        assert summary["ok"] == 18
        assert summary["by_kind"] == {"http": 7}
        assert {str(k): v for k, v in summary["by_status"].items()} == {
            "200": 18,
            "404": 6,
            "500": 1,
        }
        assert len(read_manifest(out)) == len(urls)


async def test_shard_hash_ignores_pythonhashseed_and_partitions(tmp_path: Path) -> None:
    urls = [f"http://h{i % 23}.example.org/page/{i}" for i in range(200)]
    job = write_job(tmp_path / "job.yaml", urls)
    out = tmp_path / "out"

    def dry(*extra: str, seed: str) -> object:
        return cli(
            "run", str(job), "-o", str(out), "--dry-run", *extra, env=clean_env(PYTHONHASHSEED=seed)
        )

    *runs, validate = await asyncio.gather(
        dry("--shard", "1/3", seed="1"),
        dry("--shard", "1/3", seed="2"),
        dry("--shard", "0/3", seed="3"),
        dry("--shard", "2/3", seed="4"),
        dry(seed="5"),
        cli("validate", str(job), "--shards", "3", env=clean_env(PYTHONHASHSEED="6")),
    )
    for result in runs:
        assert result.code == 0, result.stderr
    one_a, one_b, zero, two, whole = runs
    assert one_a.stdout == one_b.stdout
    assert one_a.stdout.strip(), "shard 1 of 3 got nothing"
    parts = [dry_urls(r.stdout) for r in (zero, one_a, two)]
    assert all(parts), "an empty shard"
    joined = [url for part in parts for url in part]
    assert Counter(joined) == Counter(dry_urls(whole.stdout)) == Counter(urls)
    # Host mode: a host's URLs are all in one part.
    for k, part in enumerate(parts):
        others = {host_of(u) for j, p in enumerate(parts) if j != k for u in p}
        assert not {host_of(u) for u in part} & others
    # Shard lines name the shard's own folder.
    assert f"{os.sep}shards{os.sep}1-of-3{os.sep}" in one_a.stdout
    assert not out.exists()
    # validate --shards counts what each shard's own dry run lists.
    assert validate.code == 0, validate.stderr
    assert [line for line in validate.stdout.splitlines() if line.startswith("shard ")] == [
        f"shard {k}-of-3: {len(part)} requests, {len({host_of(u) for u in part})} hosts"
        for k, part in enumerate(parts)
    ]


async def test_host_is_compared_lower_cased_idna_without_dot_and_port(tmp_path: Path) -> None:
    groups = [
        [
            "http://Example.ORG/a",
            "http://example.org./b",
            "http://example.org:8080/c",
            "https://EXAMPLE.org:8443/d",
            "http://EXAMPLE.ORG.:81/e",
        ],
        [
            "http://bücher.example/x",
            "http://xn--bcher-kva.example/y",
            "http://BÜCHER.example./z",
            "https://XN--BCHER-KVA.EXAMPLE:8443/w",
        ],
        [
            "http://127.0.0.9:1/p",
            "http://127.0.0.9:2/q",
            "http://127.0.0.9/r",
            "https://127.0.0.9/s",
        ],
    ]
    # More hosts, so that a hash that ignored these rules would likely split a group.
    filler = [f"http://filler{i}.example.net/" for i in range(20)]
    urls = [u for group in groups for u in group] + filler
    job = write_job(tmp_path / "job.yaml", urls)
    runs = await asyncio.gather(
        *(cli("run", str(job), "--dry-run", "--shard", f"{k}/4") for k in range(4))
    )
    # Each group's paths are its own (the crawler may print a URL normalised).
    group_of = {urlsplit(u).path: g for g, group in enumerate(groups) for u in group}
    shards_of: dict[int, set[int]] = defaultdict(set)
    listed = 0
    for k, result in enumerate(runs):
        assert result.code == 0, result.stderr
        for url in dry_urls(result.stdout):
            listed += 1
            path = urlsplit(url).path
            if path in group_of:
                shards_of[group_of[path]].add(k)
    assert listed == len(urls)
    assert sorted(shards_of) == list(range(len(groups)))
    for g, shards in shards_of.items():
        assert len(shards) == 1, (groups[g], shards)


async def test_urls_file_line_that_is_not_a_url_belongs_to_shard_0(tmp_path: Path) -> None:
    async with Farm(tmp_path, 6) as farm:
        urls = farm.items(2)
        (tmp_path / "urls.txt").write_text("\n".join([*urls, "not a url", ""]), "utf-8")
        job = tmp_path / "job.yaml"
        spec = {"name": "bulk", "urls_file": "urls.txt", "save": "bytes", "retries": 0}
        job.write_text(json.dumps({"version": 1, "jobs": [spec]}), "utf-8")
        out = tmp_path / "out"
        runs = await asyncio.gather(
            *(cli("run", str(job), "-o", str(out), "--shard", f"{k}/3", "-q") for k in range(3))
        )
        invalid = {
            k: [r for r in read_manifest(out / "shards" / f"{k}-of-3") if r["url"] == "not a url"]
            for k in range(3)
        }
        assert [len(invalid[k]) for k in range(3)] == [1, 0, 0]
        assert invalid[0][0]["error"]["kind"] == "invalid_url"
        assert [r.code for r in runs] == [1, 0, 0], [r.stderr for r in runs]
        merged = await cli("merge", str(out))
        assert merged.code == 1, merged.stderr
        lines = read_manifest(out)
        assert Counter(r["url"] for r in lines) == Counter([*urls, "not a url"])
        assert last_json(out)["by_kind"] == {"invalid_url": 1}


async def test_validate_prints_requests_and_hosts_per_shard(tmp_path: Path) -> None:
    hosts = 17
    urls = [f"http://h{h}.example.org/{n}" for h in range(hosts) for n in range(h % 5 + 1)]
    job = write_job(tmp_path / "job.yaml", urls)
    validate = await cli("validate", str(job), "--shards", "3")
    assert validate.code == 0, validate.stderr
    pattern = re.compile(r"^shard (\d+)-of-3: (\d+) requests, (\d+) hosts$")
    found = [m for m in map(pattern.match, validate.stdout.splitlines()) if m]
    assert [int(m.group(1)) for m in found] == [0, 1, 2], validate.stdout
    assert sum(line.startswith("shard ") for line in validate.stdout.splitlines()) == 3
    requests = [int(m.group(2)) for m in found]
    assert sum(requests) == len(urls)
    assert sum(int(m.group(3)) for m in found) == hosts
    assert "warning" not in validate.stderr.lower()


async def test_validate_warns_when_one_host_holds_most_requests(tmp_path: Path) -> None:
    urls = [f"http://big.example.org/{n}" for n in range(90)]
    urls += [f"http://h{h}.example.org/" for h in range(10)]
    job = write_job(tmp_path / "job.yaml", urls)
    result = await cli("validate", str(job), "--shards", "4")
    assert result.code == 0, result.stderr
    assert "--shard-by url" in result.stderr
    assert "big.example.org" in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("shard ")]
    assert len(lines) == 4
