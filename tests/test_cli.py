"""The installed command end to end: demo, summary files, logging flags, python -m (C1, C13)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import crawler_cli, read_manifest

SUMMARY_KEYS = {
    "run",
    "started_at",
    "finished_at",
    "duration_s",
    "requests",
    "ok",
    "failed",
    "by_kind",
    "by_status",
    "bytes",
    "requests_per_s",
    "exit_code",
}


async def test_demo_runs_and_says_where_results_are(tmp_path):
    done = await crawler_cli("demo", cwd=tmp_path)
    assert done.code == 0, done.stderr
    out = tmp_path / "crawler-demo"
    assert str(out) in done.stdout
    records = read_manifest(out)
    assert len(records) == 17
    assert all(r["ok"] for r in records)
    pages = {
        r["url"].rsplit("/", 1)[1]: (out / r["path"]).read_text("utf-8")
        for r in records
        if r["job"] == "pages"
    }
    assert "你好" in pages["zh"]
    assert "こんにちは" in pages["ja"]
    assert "Привет" in pages["ru"]
    assert "voilà" in pages["fr"]
    [get] = [r for r in records if r["job"] == "get"]
    echoed = json.loads((out / get["path"]).read_text())
    assert echoed["args"] == {"key1": "value1", "key2": "value2", "tag": ["a", "b"]}
    summary = json.loads((out / ".crawler" / "last.json").read_text())
    assert summary["ok"] == 17 and summary["exit_code"] == 0


async def test_summary_saved_per_run_and_last(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: mixed
            urls: ["{site.url}/json", "{site.url}/status/404", "{site.url}/status/410"]
    """)
    done = await crawler_cli("run", str(job))
    assert done.code == 1
    out = tmp_path / "out" / "job"
    last = json.loads((out / ".crawler" / "last.json").read_text())
    assert set(last) >= SUMMARY_KEYS
    assert (last["requests"], last["ok"], last["failed"]) == (3, 1, 2)
    assert last["by_kind"] == {"http": 2}
    assert last["by_status"] == {"200": 1, "404": 1, "410": 1}
    assert last["exit_code"] == 1
    per_run = json.loads((out / ".crawler" / "runs" / f"{last['run']}.json").read_text())
    assert per_run == last
    # Without a terminal: no progress bar, one summary line naming counts and failures.
    assert "\r" not in done.stderr
    assert "3 requests" in done.stderr and "2 failed" in done.stderr


async def test_json_logs_and_quiet(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: j
            urls: ["{site.url}/status/404"]
    """)
    done = await crawler_cli("run", str(job), "--log-format", "json", "-o", str(tmp_path / "a"))
    assert done.code == 1
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["level"] == "warning" and "404" in e["event"] for e in events)
    assert all({"time", "level", "event"} <= set(e) for e in events)
    quiet = await crawler_cli("run", str(job), "-q", "-o", str(tmp_path / "b"))
    assert quiet.code == 1
    assert quiet.stderr.strip().count("\n") == 0  # the summary line only


def test_python_dash_m_is_the_same_command(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "crawler", "validate", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "nope.yaml:1:" in done.stderr


async def test_usage_error_exits_2(tmp_path):
    done = await crawler_cli("run", "--concurrency", "0", "x.yaml", cwd=tmp_path)
    assert done.code == 2
