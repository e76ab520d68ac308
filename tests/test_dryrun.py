"""`crawler run JOB --dry-run`: one line per expanded request, `METHOD URL -> path`; nothing is
fetched, no output folder is created, exit 0."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from .conftest import CRAWLER_BIN, crawler_cli, read_manifest
from .test_naming import DEFAULT_NAME, assert_safe_relpath

LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<url>\S+) -> (?P<target>.+)$")


def parse(stdout: str) -> list[tuple[str, str, str]]:
    lines = []
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, line
        lines.append((match["method"], match["url"], match["target"]))
    return lines


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


async def test_dry_run_prints_each_request_and_fetches_nothing(site, write_job, tmp_path):
    (tmp_path / "urls.txt").write_text(
        f"# a comment\n\n{site.url}/bytes?size=5\n  {site.url}/json  \n{site.url}/text\n",
        encoding="utf-8",
    )
    job = write_job(f"""
        version: 1
        defaults:
          params: {{lang: en}}
        jobs:
          - name: get
            url: {site.url}/echo
            params: {{key1: value1, key2: value2, tag: [a, b]}}
            save: json
          - name: pages
            urls: ["{site.url}/text?words=a", "{site.url}/text?words=b%20c"]
          - name: bulk
            urls_file: urls.txt
            save: bytes
          - name: post
            method: POST
            url: {site.url}/echo
            json: {{test: object}}
            save: json
          - name: head
            method: HEAD
            url: {site.url}/echo
          - name: lines
            url: {site.url}/json
            save: jsonl
    """)
    before = tree(tmp_path)
    done = await crawler_cli("run", str(job), "--dry-run", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert site.seen.requests == []
    assert tree(tmp_path) == before  # no output folder, no state, nothing at all
    lines = parse(done.stdout)
    assert len(lines) == 9
    by_url = {(method, url): target for method, url, target in lines}
    out = tmp_path / "out" / "job"

    get = by_url["GET", f"{site.url}/echo?lang=en&key1=value1&key2=value2&tag=a&tag=b"]
    assert get.startswith(f"{out}/get/")
    assert get.endswith(".json")
    assert DEFAULT_NAME.match(Path(get).name)

    assert ("GET", f"{site.url}/text?words=a&lang=en") in by_url
    assert ("GET", f"{site.url}/text?words=b%20c&lang=en") in by_url
    bulk = [(m, u, t) for m, u, t in lines if t.startswith(f"{out}/bulk/")]
    assert [u for _, u, _ in bulk] == [
        f"{site.url}/bytes?size=5&lang=en",
        f"{site.url}/json?lang=en",
        f"{site.url}/text?lang=en",
    ]
    post = by_url["POST", f"{site.url}/echo?lang=en"]
    assert post.startswith(f"{out}/post/") and post.endswith(".json")
    assert post != get.replace("/get/", "/post/")  # the method and body are in the hash
    assert by_url["HEAD", f"{site.url}/echo?lang=en"] == "-"
    assert ("GET", f"{site.url}/json?lang=en", f"{out}/lines.jsonl") in lines

    # the jobs run together: the first lines take one request from each job in turn
    first_jobs = [t.removeprefix(f"{out}/").split("/")[0] for _, _, t in lines[:6]]
    assert first_jobs[:3] == ["get", "pages", "bulk"]


async def test_dry_run_paths_match_the_run(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        concurrency: 1
        jobs:
          - name: named
            filename: "data/{{host}}{{ext}}"
            urls: ["{site.url}/json?i=1", "{site.url}/json?i=2", "{site.url}/json?i=3"]
            save: json
          - name: plain
            urls: ["{site.url}/json?i=1", "{site.url}/json?i=2"]
            save: json
    """)
    out = tmp_path / "o"
    plan = await crawler_cli("run", str(job), "--dry-run", "-o", str(out))
    assert plan.code == 0, plan.stderr
    assert not out.exists()
    planned = {(url, target) for _, url, target in parse(plan.stdout)}
    assert f"{out}/named/data/127.0.0.1.json" in {t for _, t in planned}
    for _, target in planned:
        assert_safe_relpath(str(Path(target).relative_to(out)))

    done = await crawler_cli("run", str(job), "-o", str(out), "--no-progress")
    assert done.code == 0, done.stderr
    ran = {(r["url"], str(out / r["path"])) for r in read_manifest(out)}
    assert ran == planned


async def test_dry_run_output_relative_to_job_file_and_flag(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        output: results/here
        jobs:
          - name: a
            url: {site.url}/json
            save: json
    """)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = await crawler_cli("run", str(job), "--dry-run", cwd=elsewhere)
    assert done.code == 0, done.stderr
    [(_, _, target)] = parse(done.stdout)
    assert target.startswith(f"{tmp_path}/results/here/a/")
    flagged = await crawler_cli("run", str(job), "--dry-run", "-o", "mine", cwd=elsewhere)
    [(_, _, target)] = parse(flagged.stdout)
    assert target.startswith("mine/a/")
    assert os.listdir(elsewhere) == []
    assert not (tmp_path / "results").exists()
    assert site.seen.requests == []


async def test_dry_run_warns_of_bad_lines_and_reads_a_bom(site, write_job, tmp_path):
    (tmp_path / "urls.txt").write_bytes(
        f"\ufeff{site.url}/json\nftp://example.com/x\n\x1b[31mred\n{site.url}/text\n".encode()
    )
    job = write_job("""
        version: 1
        jobs:
          - {name: bulk, urls_file: urls.txt}
    """)
    done = await crawler_cli("run", str(job), "--dry-run")
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2  # the lines that are not URLs are data to fix, on stderr (C17)
    assert lines[0].startswith(f"GET {site.url}/json -> ")  # a BOM is not part of the URL
    assert lines[1].startswith(f"GET {site.url}/text -> ")
    warnings = done.stderr.splitlines()
    assert warnings[0].startswith("urls.txt:2: warning: ") and "ftp://example.com/x" in warnings[0]
    assert warnings[1].startswith("urls.txt:3: warning: ") and "\x1b" not in done.stderr
    assert len(warnings) == 2
    assert site.seen.requests == []


async def test_dry_run_of_an_invalid_job_exits_2(write_job, tmp_path):
    job = write_job("""
        version: 1
        jobs:
          - {name: a, url: "http://h.test/", filename: "{nope}"}
    """)
    done = await crawler_cli("run", str(job), "--dry-run")
    assert done.code == 2
    assert done.stdout == ""
    assert "filename" in done.stderr
    assert not (tmp_path / "out").exists()


async def test_dry_run_piped_into_head(write_job, tmp_path):
    """`crawler run JOB --dry-run | head -1`: the reader leaves early; no traceback."""
    (tmp_path / "urls.txt").write_text(
        "".join(f"http://h.test/{i}\n" for i in range(50_000)), encoding="utf-8"
    )
    job = write_job("""
        version: 1
        jobs:
          - {name: bulk, urls_file: urls.txt}
    """)
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        "run",
        str(job),
        "--dry-run",
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = await asyncio.wait_for(asyncio.to_thread(reader.readline), 30)
    # the reading end is closed now, as when `head` exits
    assert first.startswith(b"GET http://h.test/0 -> ")
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
