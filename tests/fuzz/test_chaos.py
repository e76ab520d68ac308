"""kill -9 at random moments (issue 12, C7, C10): a real job of a few thousand requests against a
local site, the installed `crawler run` killed with SIGKILL again and again on the same output
folder (at random, seeded, moments; some while a large body is spilling to its temp file; many
during state commits, which happen every half second), then left to finish. The run keeps one
run id throughout (C10); its manifest has exactly one line per request; every file is complete
and matches its line's sha256 and the body the site sent; no temp file is left; and the site saw
no request more than once beyond those in flight at a kill. The same for crawl mode.

`make test` runs 20 random kills (plus 2 aimed at a spilling body) in about 20 s a variant;
`make fuzz` (HYPOTHESIS_PROFILE=fuzz) 100 kills (plus 5), 12,000 URLs and 5,000 pages.
CRAWLER_CHAOS_SEED picks other kill moments."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..conftest import CRAWLER_BIN
from .chaos_site import ChaosSite, big_body, page_body, small_body
from .conftest import long_run

CONCURRENCY = 8
SEED = int(os.environ.get("CRAWLER_CHAOS_SEED", "12"))


@dataclass
class Plan:
    kills: int  # at random moments
    spill_kills: int  # each while a large body is past the spill threshold
    small: int
    big: int
    pages: int

    @property
    def total_kills(self) -> int:
        return self.kills + self.spill_kills


CI = Plan(kills=20, spill_kills=2, small=2500, big=4, pages=1000)
LONG = Plan(kills=100, spill_kills=5, small=12000, big=20, pages=5000)


def plan() -> Plan:
    return LONG if long_run() else CI


@dataclass
class Killer:
    """Starts `crawler run` on one job file and output folder, and kills it with SIGKILL."""

    job: Path
    log: Path
    rng: random.Random
    spill_seen: int = 0  # kills after which a spilled body's temp file was there
    delays: list[float] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with self.log.open("ab") as log:
            log.write(b"--- start\n")
            return subprocess.Popen(
                [CRAWLER_BIN, "run", str(self.job), "--no-progress"],
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.job.parent,
            )

    def kill(self, proc: subprocess.Popen[bytes], out: Path) -> None:
        proc.kill()  # SIGKILL, to this one process we started
        proc.wait(30)
        tmp = out / ".crawler" / "tmp"
        if tmp.is_dir() and any(p.stat().st_size > 8 * 1024 * 1024 for p in tmp.glob("*.part")):
            self.spill_seen += 1

    def kill_at_random(self, out: Path, number: int) -> None:
        delay = self.rng.uniform(0.1, 1.5)
        self.delays.append(delay)
        proc = self.start()
        try:
            code = proc.wait(delay)
        except subprocess.TimeoutExpired:
            self.kill(proc, out)
            return
        raise AssertionError(
            f"run {number} ended by itself (exit {code}) before its kill at {delay:.2f} s; "
            f"log:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def kill_while_spilling(self, out: Path, site: ChaosSite) -> None:
        site.past_spill_mark.clear()
        proc = self.start()
        try:
            if not site.past_spill_mark.wait(60):
                raise AssertionError("no large body reached the spill threshold")
            time.sleep(0.1)
        finally:
            self.kill(proc, out)

    def finish(self) -> int:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with self.log.open("ab") as log:
            log.write(b"--- final run\n")
            done = subprocess.run(
                [CRAWLER_BIN, "run", str(self.job), "--no-progress"],
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.job.parent,
                timeout=600,
            )
        return done.returncode


def write_job(path: Path, jobs: list[dict[str, Any]]) -> None:
    top = {"version": 1, "output": "out", "concurrency": CONCURRENCY, "per_host": CONCURRENCY}
    path.write_text(json.dumps({**top, "jobs": jobs}), encoding="utf-8")


def slow_enough(site: ChaosSite, requests: int, kills: int) -> None:
    """Make the site slow enough that no run can fetch everything before its kill (a run that
    finished would make the next one start anew, C10): with each reply waiting ``delay``, a
    run fetches at most concurrency / delay a second for at most 1.5 s."""
    site.delay = CONCURRENCY * 1.5 * kills / (requests * 0.8)


def check_finished_output(out: Path, expected: dict[str, str], log: Path) -> list[dict[str, Any]]:
    """One run id, one line per URL, each file complete and as sent, nothing temporary left."""
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    runs = Counter(r["run"] for r in records)
    assert len(runs) == 1, f"resumed runs must keep their run id (C10): {runs}"
    counts = Counter(r["url"] for r in records)
    repeated = {url: n for url, n in counts.items() if n > 1}
    assert not repeated, f"{len(repeated)} requests have more than one line: {list(repeated)[:5]}"
    assert set(counts) == set(expected), (
        f"missing {len(set(expected) - set(counts))}, unexpected {len(set(counts) - set(expected))}"
    )
    for record in records:
        assert record["ok"], record
        data = (out / record["path"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert digest == record["sha256"], f"{record['path']} does not match its manifest line"
        assert len(data) == record["bytes"]
        assert digest == expected[record["url"]], f"{record['path']} is not what the site sent"
    assert not list(out.rglob("*.part")), "temp files left behind"
    tmp = out / ".crawler" / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), list(tmp.iterdir())
    last = json.loads((out / ".crawler" / "last.json").read_text())
    assert last["exit_code"] == 0 and last["requests"] == len(expected), last
    assert "Traceback" not in log.read_text(errors="replace")
    return records


def check_hits(site: ChaosSite, paths: list[str], kills: int) -> int:
    """Each URL fetched once, except those in flight when a kill came (at most concurrency
    each time), which are fetched again. Returns how many were fetched again."""
    hits = {path: site.hits[path] for path in paths}
    assert all(n >= 1 for n in hits.values())
    extra = sum(hits.values()) - len(paths)
    assert extra <= kills * CONCURRENCY, f"{extra} repeated fetches after {kills} kills"
    return extra


def lines_so_far(out: Path) -> int:
    manifest = out / "manifest.jsonl"
    return manifest.read_bytes().count(b"\n") if manifest.exists() else 0


def report(name: str, **figures: object) -> None:
    """One line for the log of `make fuzz` (pytest -rA or -s shows it)."""
    print(f"chaos {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_kill_9_again_and_again_then_finish(tmp_path: Path) -> None:
    p = plan()
    rng = random.Random(SEED)
    with ChaosSite() as site:
        paths = [f"/s/{n}" for n in range(p.small)]
        big = [f"/big/{n}" for n in range(p.big)]
        # Two large bodies first (for the kills aimed at a spill), the others spread out.
        for i, path in enumerate(big):
            paths.insert(0 if i < 2 else rng.randrange(len(paths)), path)
        (tmp_path / "urls.txt").write_text("\n".join(site.url(x) for x in paths) + "\n")
        expected = {
            site.url(x): sha(
                big_body(int(x[5:])) if x.startswith("/big/") else small_body(int(x[3:]))
            )
            for x in paths
        }
        job = tmp_path / "job.yaml"
        write_job(job, [{"name": "chaos", "urls_file": "urls.txt", "save": "bytes"}])
        slow_enough(site, len(paths), p.total_kills)
        out = tmp_path / "out"
        killer = Killer(job, tmp_path / "crawler.log", rng)

        for _ in range(p.spill_kills):
            killer.kill_while_spilling(out, site)
        assert killer.spill_seen >= 1, "no kill landed while a large body was spilling"
        for number in range(p.kills):
            killer.kill_at_random(out, number)

        before_final = lines_so_far(out)
        site.delay = 0
        assert killer.finish() == 0, (tmp_path / "crawler.log").read_text()[-3000:]
        check_finished_output(out, expected, killer.log)
        extra = check_hits(site, paths, p.total_kills)
        assert site.big_cut >= 1
        report(
            "urls_file",
            requests=len(paths),
            kills=p.total_kills,
            kills_with_a_spill_file=killer.spill_seen,
            large_bodies_cut=site.big_cut,
            finished_before_the_final_run=before_final,
            fetched_again=extra,
        )


def test_kill_9_a_crawl_again_and_again_then_finish(tmp_path: Path) -> None:
    p = plan()
    rng = random.Random(SEED + 1)
    with ChaosSite(pages=p.pages, seed=SEED) as site:
        pages = [f"/site/{n}.html" for n in range(p.pages)]
        expected = {site.url(x): sha(page_body(n, p.pages, SEED)) for n, x in enumerate(pages)}
        job = tmp_path / "job.yaml"
        follow = {"depth": p.pages, "robots": False, "max_pages": p.pages * 2}
        write_job(
            job, [{"name": "site", "url": site.url(pages[0]), "save": "bytes", "follow": follow}]
        )
        slow_enough(site, len(pages), p.kills)
        out = tmp_path / "out"
        killer = Killer(job, tmp_path / "crawler.log", rng)
        for number in range(p.kills):
            killer.kill_at_random(out, number)

        before_final = lines_so_far(out)
        site.delay = 0
        assert killer.finish() == 0, (tmp_path / "crawler.log").read_text()[-3000:]
        records = check_finished_output(out, expected, killer.log)
        assert {r["depth"] for r in records} >= {0, 1}
        extra = check_hits(site, pages, p.kills)
        report(
            "crawl",
            pages=len(pages),
            kills=p.kills,
            finished_before_the_final_run=before_final,
            fetched_again=extra,
        )
