"""The run summary's extra keys and `crawler report OUT`: a self-contained HTML page per run,
streamed from the manifest, checked as text and in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import struct
from pathlib import Path

import pytest

from crawler.output.manifest import Record
from crawler.report import stats as report_stats
from crawler.report.stats import LatencyHistogram, RunStats, host_of
from crawler.report.summary import human_ms, summary_line
from crawler.report.svg import axis_ticks

from .conftest import crawler_cli, read_manifest

# --- pure parts -----------------------------------------------------------------------------


def test_latency_quantiles_are_within_a_bucket_of_exact():
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1.2) for _ in range(20_000)] + [0.3, 0.5]
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[int(q * len(ordered)) - 1]
        assert hist.quantile(q) == pytest.approx(exact, rel=0.05)
    assert hist.max_ms == max(values) and hist.quantile(1.0) <= max(values)
    assert LatencyHistogram().quantile(0.5) == 0


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.ORG/a", "example.org"),
        ("https://example.org:443/", "example.org"),
        ("http://example.org:8080/x?y", "example.org:8080"),
        ("https://user:pw@example.org:8443/", "example.org:8443"),
        ("http://[::1]:9000/", "[::1]:9000"),
        ("not a url", "(invalid URL)"),
        ("http://example.org:99999/", "(invalid URL)"),
    ],
)
def test_host_of(url, host):
    assert host_of(url) == host


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [(0, 1, 0.25), (7, 8, 2), (245, 250, 50), (1000, 1000, 200), (3.2, 4, 1)],
)
def test_axis_ticks(value, top, step):
    assert axis_ticks(value) == (top, step)


def test_hosts_past_the_cap_are_pooled(monkeypatch):
    monkeypatch.setattr(report_stats, "MAX_HOSTS", 3)
    stats = RunStats()
    for i in range(10):
        stats.add_line({"url": f"http://h{i}.test/", "ok": True, "elapsed_ms": 5})
    assert len(stats.hosts) == 4
    assert stats.hosts[report_stats.OTHER_HOSTS].requests == 7


# --- the summary of a real run --------------------------------------------------------------


async def test_summary_names_retries_and_the_slowest_hosts(site, write_job, tmp_path):
    port = site.url.rsplit(":", 1)[1]
    job = write_job(f"""
        version: 1
        defaults: {{retries: 2}}
        jobs:
          - name: mixed
            urls:
              - "{site.url}/slow?delay=0.3"
              - "{site.url}/slow?delay=0.2"
              - "http://localhost:{port}/json"
              - "http://localhost:{port}/flaky/x?codes=503,200"
    """)
    done = await crawler_cli("run", str(job))
    assert done.code == 0, done.stderr
    out = tmp_path / "out" / "job"
    last = json.loads((out / ".crawler" / "last.json").read_text())
    assert last["retries"] == 1
    slowest = last["slowest_hosts"]
    assert [h["host"] for h in slowest] == [f"127.0.0.1:{port}", f"localhost:{port}"]
    assert slowest[0]["requests"] == 2 and 180 <= slowest[0]["median_ms"] <= 400
    assert slowest[0]["max_ms"] >= 300
    assert "1 retry" in done.stderr
    assert f"slowest host 127.0.0.1:{port} (median" in done.stderr


# --- the report -----------------------------------------------------------------------------


def _line(run: str, i: int, **fields) -> bytes:
    record = Record(
        run=run,
        job=fields.get("job", "bulk"),
        method="GET",
        url=fields.get("url", f"http://host{i % 7}.test/page/{i}"),
        final_url=None,
        status=fields.get("status", 200),
        ok=fields.get("ok", True),
        path=None,
        bytes=fields.get("bytes", 1000),
        sha256=None,
        content_type="text/html",
        charset="utf-8",
        elapsed_ms=fields.get("elapsed_ms", 10.0 + i % 300),
        attempts=fields.get("attempts", 1),
        error=fields.get("error"),
        fetched_at=f"2024-05-01T02:{15 + i // 6000:02d}:{i // 100 % 60:02d}.000Z",
        key=f"{i:032x}",
    )
    return record.to_line()


def _write_manifest(out: Path, run: str, n: int) -> None:
    """A run of ``n`` lines between lines of two other runs, each 10th failing, plus a line
    with markup in it and a torn last line."""
    out.mkdir(parents=True)
    with (out / "manifest.jsonl").open("wb") as f:
        for i in range(50):
            f.write(_line("20240430T000000Z-aaaaaa", i))
        for i in range(n):
            if i % 10 == 3:
                kind = "timeout" if i % 20 == 3 else "http"
                f.write(
                    _line(
                        run,
                        i,
                        ok=False,
                        status=None if kind == "timeout" else 503,
                        bytes=None,
                        attempts=4,
                        error={"kind": kind, "message": f"{kind} after 4 attempts"},
                    )
                )
            else:
                f.write(_line(run, i))
        f.write(
            _line(
                run,
                n,
                url="http://evil.test/<script>alert(1)</script>",
                ok=False,
                status=404,
                error={"kind": "http", "message": "<b>HTTP 404</b>"},
            )
        )
        f.write(b'{"run":"' + run.encode() + b'","job":"bul')  # killed mid-line


async def test_report_streams_a_large_run(tmp_path):
    out, run = tmp_path / "out", "20240501T021500Z-bbbbbb"
    _write_manifest(out, run, 30_000)
    done = await crawler_cli("report", str(out))  # no last.json: the manifest's last run
    assert done.code == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path == out / ".crawler" / f"report-{run}.html"
    page = path.read_text("utf-8")
    assert f"crawler run {run}" in page
    # 30,000 lines of this run plus the one with markup; the other run's 50 are not counted.
    assert "<b>30,001</b><span>requests</span>" in page
    assert "<b>3,001</b><span>failed</span>" in page
    assert "Failures (3,001)" in page and "and 2,801 more failures" in page
    assert "Hosts (8)" in page and "host3.test" in page
    for heading in ("Outcome and error kinds", "HTTP status codes", "Latency", "Throughput"):
        assert heading in page
    # Escaped, and nothing that would run or load anything.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;HTTP 404" in page
    assert "<script" not in page.lower()
    assert not re.search(r"\b(src|href)\s*=|url\(|@import", page)
    assert page.count("<svg") == 4


async def test_report_of_a_chosen_run_to_a_chosen_file(tmp_path):
    out, run = tmp_path / "out", "20240501T021500Z-bbbbbb"
    _write_manifest(out, run, 100)
    target = tmp_path / "old.html"
    done = await crawler_cli(
        "report", str(out), "--run", "20240430T000000Z-aaaaaa", "-o", str(target)
    )
    assert done.code == 0, done.stderr
    assert done.stdout.strip() == str(target)
    page = target.read_text("utf-8")
    assert "<b>50</b><span>requests</span>" in page
    assert "no summary saved" in page  # that run has no runs/<run>.json
    assert "Failures</h2><p>None" in page


@pytest.mark.parametrize("case", ["no such run", "no output folder"])
async def test_report_errors_exit_2(tmp_path, case):
    out = tmp_path / "out"
    if case == "no such run":
        _write_manifest(out, "20240501T021500Z-bbbbbb", 10)
    done = await crawler_cli("report", str(out), "--run", "nope")
    assert done.code == 2
    assert done.stdout == ""
    assert ("no request of run 'nope'" if case == "no such run" else "no manifest") in (done.stderr)


async def _real_run(site, write_job, tmp_path) -> Path:
    urls = [f"{site.url}/slow?delay={0.01 * (i % 8)}&i={i}" for i in range(40)]
    urls += [f"{site.url}/status/404?i={i}" for i in range(4)]
    urls += [f"{site.url}/flaky/f{i}?codes=503,200" for i in range(3)]
    urls += ["http://127.0.0.1:1/refused"]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    job = write_job("""
        version: 1
        concurrency: 8
        defaults: {retries: 1}
        jobs: [{name: mixed, urls_file: urls.txt}]
    """)
    done = await crawler_cli("run", str(job))
    assert done.code == 1, done.stderr
    return tmp_path / "out" / "job"


async def test_report_of_a_real_run(site, write_job, tmp_path):
    out = await _real_run(site, write_job, tmp_path)
    done = await crawler_cli("report", str(out))
    assert done.code == 0, done.stderr
    page = Path(done.stdout.strip()).read_text("utf-8")
    run = json.loads((out / ".crawler" / "last.json").read_text())["run"]
    assert f"crawler run {run}" in page and "exit 1</span> finished; some requests failed" in page
    assert "<b>48</b><span>requests</span>" in page and "<b>5</b><span>failed</span>" in page
    assert "<b>4</b><span>retries</span>" in page  # a 503 each of 3, and the refused one
    assert len(read_manifest(out)) == 48
    assert "127.0.0.1:1/refused" in page and "connect" in page
    assert f"<td>127.0.0.1:{site.url.rsplit(':', 1)[1]}</td>" in page


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
async def test_report_renders_in_headless_chromium(site, write_job, tmp_path):
    out = await _real_run(site, write_job, tmp_path)
    done = await crawler_cli("report", str(out), "-o", str(tmp_path / "report.html"))
    assert done.code == 0, done.stderr
    url = (tmp_path / "report.html").as_uri()
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
    ]

    async def chromium(*extra: str) -> tuple[bytes, bytes]:
        profile = tmp_path / f"profile-{len(extra)}"
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *flags,
            f"--user-data-dir={profile}",
            *extra,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, stderr.decode(errors="replace")
        return stdout, stderr

    dom, log = await chromium("--dump-dom")
    console = [line for line in log.decode(errors="replace").splitlines() if "CONSOLE" in line]
    assert console == []
    rendered = dom.decode()
    assert "<h1>crawler run " in rendered
    assert rendered.count("<svg") == 4
    charts = rendered.split("<svg")[1:]
    assert all(len(re.findall(r"<rect\b", chart)) >= 2 for chart in charts)  # bars in each
    assert "Throughput over time" in rendered and "Failures (5)" in rendered

    shot = tmp_path / "report.png"
    await chromium(f"--screenshot={shot}")
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 2400)
    assert len(data) > 50_000  # charts and text, not a blank page


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.25, "0.2 ms"),
        (42.4, "42 ms"),
        (1250, "1.25 s"),
        (125_000, "2 min 5 s"),
        (12_000_000, "3 h 20 min"),
    ],
)
def test_human_ms(ms, text):
    assert human_ms(ms) == text


def test_summary_line_reads_as_a_sentence():
    summary = {
        "run": "r1",
        "requests": 3,
        "ok": 1,
        "failed": 2,
        "by_kind": {"http": 1, "timeout": 1},
        "retries": 5,
        "bytes": 2048,
        "duration_s": 1.25,
        "requests_per_s": 2.4,
        "slowest_hosts": [{"host": "b.test", "median_ms": 1500.0}, {"host": "a.test"}],
        "out": "out/x",
    }
    assert summary_line(summary) == (
        "run r1: 3 requests, 1 ok, 2 failed (http 1, timeout 1), 5 retries, 2.0 KiB, 1.2 s, "
        "2.4 req/s, slowest host b.test (median 1.50 s); results in out/x"
    )


async def test_report_of_a_run_with_no_request(write_job, tmp_path):
    (tmp_path / "urls.txt").write_text("# nothing yet\n")
    job = write_job("version: 1\njobs: [{name: e, urls_file: urls.txt}]\n")
    assert (await crawler_cli("run", str(job))).code == 0
    done = await crawler_cli("report", str(tmp_path / "out" / "job"))
    assert done.code == 0, done.stderr
    page = Path(done.stdout.strip()).read_text("utf-8")
    assert "<b>0</b><span>requests</span>" in page and "every request succeeded" in page
    assert "No request finished in this run." in page
