"""Honest numbers (C13, C17), through the installed command: the summary line, last.json,
`--metrics`, `crawler report` and the manifest count the same requests; a request listed
twice in one job is fetched once and counted once; a run stopped by a signal or a local error
says so in its summary line and in last.json, and the next run resumes; `crawler report`
exits 4 with one clear line when it cannot write."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from .conftest import CRAWLER_BIN, crawler_cli, read_manifest
from .test_metrics import samples

# The summary line, clean or stopped:
#   run ID: 7 requests, 5 ok, 2 failed (http 1, invalid_url 1), ...; results in OUT
#   run ID STOPPED (SIGTERM, 12 requests not done; the next run resumes): 28 requests, ...
SUMMARY_RE = re.compile(
    r"^run (?P<run>\S+?)"
    r"(?: STOPPED \((?P<reason>.+?)(?:, (?P<left>\d+) requests? not done)?; the next run resumes\))?"
    r": (?P<requests>\d+) requests?, (?P<ok>\d+) ok, (?P<failed>\d+) failed"
    r"(?: \((?P<kinds>[^)]*)\))?"
)


def summary_of(stderr: str) -> re.Match[str]:
    """The one summary line of a run's stderr."""
    lines = [line for line in stderr.splitlines() if line.startswith("run ")]
    assert len(lines) == 1, stderr
    match = SUMMARY_RE.match(lines[0])
    assert match, lines[0]
    return match


def kinds_of(match: re.Match[str]) -> dict[str, int]:
    if not match["kinds"]:
        return {}
    pairs = (part.rsplit(" ", 1) for part in match["kinds"].split(", "))
    return {kind: int(count) for kind, count in pairs}


def last_json(out: Path) -> dict:
    return json.loads((out / ".crawler" / "last.json").read_text(encoding="utf-8"))


def job_files(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder.parent)) for p in folder.rglob("*") if p.is_file()}


# --- the counts agree everywhere ------------------------------------------------------------


async def test_counts_agree_everywhere_and_a_repeated_request_counts_once(
    site, write_job, tmp_path
):
    (tmp_path / "urls.txt").write_text(
        f"{site.url}/text?words=twice\n"
        f"{site.url}/text?words=thrice\n"  # also in job a: another job's request, fetched too
        f"{site.url}/text?words=twice\n"
        f"{site.url}/bytes?size=10\n"
        "not a url\n",
        encoding="utf-8",
    )
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0, save: bytes}}
        jobs:
          - name: a
            urls:
              - "{site.url}/text?words=thrice"
              - "{site.url}/json"
              - "{site.url}/text?words=thrice"
              - "{site.url}/status/404"
              - "{site.url}/text?words=thrice"
          - name: b
            urls_file: urls.txt
    """)
    out = tmp_path / "out" / "job"
    prom = tmp_path / "crawl.prom"

    dry = await crawler_cli("run", str(job), "--dry-run", cwd=tmp_path)
    assert dry.code == 0, dry.stderr
    listed = Counter(line.split(" ")[1] for line in dry.stdout.splitlines())
    assert listed[f"{site.url}/text?words=thrice"] == 2  # once in a, once in b
    assert listed[f"{site.url}/text?words=twice"] == 1
    assert sum(listed.values()) == 6  # 7 requests, one of them not a URL (a warning instead)

    done = await crawler_cli("run", str(job), "--metrics", str(prom), cwd=tmp_path)
    assert done.code == 1, done.stderr

    # The server saw each request once: the one listed 3 times in a, and its copy in b.
    assert site.seen.hits["/text?words=thrice"] == 2
    assert site.seen.hits["/text?words=twice"] == 1
    assert len(site.seen.requests) == 6

    records = read_manifest(out)
    assert len(records) == 7
    assert len({r["key"] for r in records}) == 7
    assert (
        Counter((r["job"], r["url"]) for r in records)[("a", f"{site.url}/text?words=thrice")] == 1
    )
    ok = sum(r["ok"] for r in records)
    by_kind = Counter(r["error"]["kind"] for r in records if not r["ok"])
    by_status = Counter(str(r["status"]) for r in records if r["status"] is not None)
    assert (ok, dict(by_kind)) == (5, {"http": 1, "invalid_url": 1})

    # One file per successful request, the triple one included once.
    saved = {r["path"] for r in records if r["path"]}
    assert len(saved) == 5
    assert job_files(out / "a") | job_files(out / "b") == saved

    line = summary_of(done.stderr)
    assert line["reason"] is None, "a finished run must not read as stopped"
    assert (int(line["requests"]), int(line["ok"]), int(line["failed"])) == (7, 5, 2)
    assert kinds_of(line) == dict(by_kind)

    summary = last_json(out)
    assert summary["run"] == line["run"] == records[0]["run"]
    assert (summary["requests"], summary["ok"], summary["failed"]) == (7, 5, 2)
    assert summary["by_kind"] == dict(by_kind)
    assert summary["by_status"] == dict(by_status)
    assert summary["requests_this_invocation"] == 7
    assert summary["exit_code"] == 1
    assert "stopped" not in summary and "remaining" not in summary

    metrics = samples(prom.read_text(encoding="utf-8"))
    assert metrics[("crawler_last_run_requests", (("outcome", "ok"),))] == 5
    assert metrics[("crawler_last_run_requests", (("outcome", "failed"),))] == 2
    failures = {
        dict(labels)["kind"]: value
        for (name, labels), value in metrics.items()
        if name == "crawler_last_run_failures"
    }
    assert {k: v for k, v in failures.items() if v} == dict(by_kind)
    assert {"invalid_url", "host_down", "connect", "http"} <= set(failures)  # 0s listed too
    responses = {
        dict(labels)["status"]: value
        for (name, labels), value in metrics.items()
        if name == "crawler_last_run_responses"
    }
    assert responses == dict(by_status)
    assert metrics[("crawler_last_run_exit_code", ())] == 1

    report = await crawler_cli("report", str(out))
    assert report.code == 0, report.stderr
    page = Path(report.stdout.strip()).read_text(encoding="utf-8")
    assert "<b>7</b><span>requests</span>" in page
    assert "<b>5</b><span>ok</span>" in page
    assert "<b>2</b><span>failed</span>" in page


async def test_report_latency_leaves_out_requests_never_sent(site, write_job, tmp_path):
    """Requests never sent (invalid_url here) count as failures, but in no latency figure:
    the report's median is that of the two requests sent, each over 300 ms."""
    (tmp_path / "urls.txt").write_text(
        f"{site.url}/slow?delay=0.3\n{site.url}/slow?delay=0.35\n"
        + "".join(f"ftp://not-http/{n}\n" for n in range(30)),
        encoding="utf-8",
    )
    job = write_job(
        "version: 1\ndefaults: {retries: 0}\njobs:\n  - name: j\n    urls_file: urls.txt\n"
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    out = tmp_path / "out" / "job"
    [slowest] = last_json(out)["slowest_hosts"]
    assert slowest["requests"] == 2 and slowest["median_ms"] >= 250, slowest
    report = await crawler_cli("report", str(out))
    assert report.code == 0, report.stderr
    page = Path(report.stdout.strip()).read_text(encoding="utf-8")
    assert "<b>32</b><span>requests</span>" in page
    median = re.search(r"<b>([^<]+)</b><span>median latency</span>", page)
    assert median, "no median latency card"
    value, unit = median[1].split(" ")
    assert unit == "ms" and float(value) >= 250, median[1]


async def test_repeats_are_dropped_past_the_keys_kept_in_memory(write_job, tmp_path):
    """Past 65,536 distinct requests the keys seen move to disk; repeats are still dropped.
    A dry run shows it without a request: each URL is listed once."""
    urls = [f"http://127.0.0.1:9/p/{n}" for n in range(66_000)]
    (tmp_path / "urls.txt").write_text(
        "\n".join(urls + urls[:300] + urls[-300:]) + "\n", encoding="utf-8"
    )
    job = write_job("version: 1\njobs:\n  - name: j\n    urls_file: urls.txt\n")
    dry = await crawler_cli("run", str(job), "--dry-run", cwd=tmp_path, timeout=180)
    assert dry.code == 0, dry.stderr
    listed = [line.split(" ")[1] for line in dry.stdout.splitlines()]
    assert len(listed) == len(urls) and listed == urls


# --- a stopped run says so ------------------------------------------------------------------

N_SLOW = 40


class Slow:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.finished = 0


async def slow_site(aiohttp_server, delay: float) -> tuple[str, Slow]:
    seen = Slow()

    async def item(request: web.Request) -> web.Response:
        seen.hits[request.path] += 1
        await asyncio.sleep(delay)
        seen.finished += 1
        return web.Response(text=f"item {request.match_info['n']}\n")

    app = web.Application()
    app.router.add_get("/item/{n}", item)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen


async def spawn(*args: str, cwd: Path | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def wait_until(condition, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("sig", "code", "source"),
    [
        (signal.SIGTERM, 143, "urls"),
        (signal.SIGINT, 130, "urls"),
        (signal.SIGTERM, 143, "urls_file"),
    ],
)
async def test_a_stopped_run_says_so_and_the_next_run_resumes(
    aiohttp_server, write_job, tmp_path, sig, code, source
):
    base, seen = await slow_site(aiohttp_server, delay=0.3)
    urls = [f"{base}/item/{n}" for n in range(N_SLOW)]
    if source == "urls":
        listing = "    urls:\n" + "".join(f"      - {u}\n" for u in urls)
    else:
        (tmp_path / "urls.txt").write_text("".join(f"{u}\n" for u in urls), encoding="utf-8")
        listing = "    urls_file: urls.txt\n"
    job = write_job(
        "version: 1\nconcurrency: 4\nper_host: 4\n"
        "defaults: {save: bytes, retries: 1}\njobs:\n  - name: items\n" + listing
    )
    out = tmp_path / "out" / "job"
    prom = tmp_path / "crawl.prom"
    proc = await spawn("run", str(job), "--metrics", str(prom), cwd=tmp_path)
    await wait_until(lambda: seen.finished >= 8)
    proc.send_signal(sig)
    got, err = await finish(proc, timeout=30)
    assert got == code, err

    records = read_manifest(out)
    done = len(records)
    assert 8 <= done < N_SLOW
    line = summary_of(err)
    assert line["reason"] == sig.name, line[0]
    assert (int(line["requests"]), int(line["ok"]), int(line["failed"])) == (done, done, 0)
    assert f"; results so far in {out}" in line.string
    summary = last_json(out)
    assert summary["stopped"] == sig.name
    assert summary["exit_code"] == code
    assert (summary["requests"], summary["ok"], summary["failed"]) == (done, done, 0)
    if source == "urls":
        # Inline URLs only: how many are left is known, and said.
        assert summary["remaining"] == N_SLOW - done
        assert int(line["left"]) == N_SLOW - done
    else:
        # A urls_file is not read again to count what is left.
        assert "remaining" not in summary
        assert line["left"] is None
    metrics = samples(prom.read_text(encoding="utf-8"))
    assert metrics[("crawler_last_run_exit_code", ())] == code
    assert metrics[("crawler_last_run_requests", (("outcome", "ok"),))] == done

    got, err = await finish(await spawn("run", str(job), cwd=tmp_path))
    assert got == 0, err
    line2 = summary_of(err)
    assert line2["reason"] is None and line2["run"] == line["run"]  # the same run, resumed
    assert int(line2["requests"]) == N_SLOW
    summary = last_json(out)
    assert "stopped" not in summary and "remaining" not in summary
    assert summary["requests"] == N_SLOW and summary["exit_code"] == 0
    mine = [r for r in read_manifest(out) if r["run"] == line["run"]]
    assert sorted(r["url"] for r in mine) == sorted(urls)
    assert all(n == 1 for n in seen.hits.values())  # in-flight requests finished, not redone


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_run_stopped_by_a_full_disk_says_so(aiohttp_server, write_job, small_disk):
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 300_000)

    app = web.Application()
    app.router.add_get("/big/{n}", big)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    urls = "".join(f"      - {base}/big/{n}\n" for n in range(20))
    job = write_job(
        "version: 1\nconcurrency: 2\ndefaults: {save: bytes}\njobs:\n"
        f"  - name: big\n    urls:\n{urls}"
    )
    out = small_disk / "out"
    code, err = await finish(await spawn("run", str(job), "-o", str(out)))
    assert code == 4, err
    line = summary_of(err)
    assert line["reason"] and "No space left" in line["reason"], line[0]
    assert int(line["requests"]) == len(read_manifest(out))
    # The summary is small enough to be saved once the failed file's temp is gone.
    summary = last_json(out)
    assert summary["run"] == line["run"] and summary["exit_code"] == 4
    assert "No space left" in summary["stopped"]
    assert summary["remaining"] == 20 - int(line["requests"]) == int(line["left"])


# --- crawler report cannot write ------------------------------------------------------------


async def finished_out(site, write_job, tmp_path) -> Path:
    job = write_job(f"version: 1\njobs:\n  - name: j\n    url: {site.url}/json\n")
    out = tmp_path / "out" / "job"
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 0, done.stderr
    return out


def assert_one_clear_line(done, where: str) -> None:
    assert done.code == 4, (done.code, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"crawler: cannot write the report to {where}"), lines[0]
    assert done.stdout == ""


async def test_report_into_proc_exits_4_with_one_line(site, write_job, tmp_path):
    out = await finished_out(site, write_job, tmp_path)
    done = await crawler_cli("report", str(out), "-o", "/proc/x.html")
    assert_one_clear_line(done, "/proc/x.html")


async def test_report_onto_a_folder_exits_4_with_one_line(site, write_job, tmp_path):
    out = await finished_out(site, write_job, tmp_path)
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = await crawler_cli("report", str(out), "-o", str(folder))
    assert_one_clear_line(done, str(folder))
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp file left beside it


@pytest.mark.skipif(
    os.geteuid() == 0, reason="running as root: root ignores file permissions (chmod)"
)
async def test_report_into_a_read_only_out_exits_4_with_one_line(site, write_job, tmp_path):
    out = await finished_out(site, write_job, tmp_path)
    for folder in (out / ".crawler", out):
        folder.chmod(0o555)
    try:
        done = await crawler_cli("report", str(out))
    finally:
        for folder in (out, out / ".crawler"):
            folder.chmod(0o755)
    assert_one_clear_line(done, str(out))


async def test_report_into_a_read_only_mount_exits_4_with_one_line(site, write_job, tmp_path):
    """The same as a read-only OUT, where root cannot write either: a read-only bind mount."""
    out = await finished_out(site, write_job, tmp_path)
    bind = subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bind.stderr.strip()}")
    try:
        ro = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(out)], capture_output=True, text=True
        )
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.strip()}")
        done = await crawler_cli("report", str(out))
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)
    assert_one_clear_line(done, str(out))
