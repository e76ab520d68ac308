"""The per-host breaker (C17), through the installed command: after `host_down_after`
consecutive connection failures to one host and port with no success, that host's remaining
requests are recorded as `host_down` (attempts 0 when never sent) without being attempted,
with one warning; latency figures leave out backoff waits and never-sent requests.

A refusing host is a loopback address and a port that was bound, noted and closed: connects
to it are refused at once, and nothing leaves the machine."""

from __future__ import annotations

import json
import socket
import statistics
from collections import Counter
from pathlib import Path

import pytest

from .conftest import crawler_cli, read_manifest


def refusing_port(ip: str) -> int:
    """A port on ``ip`` nobody listens on: connects are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


def down_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "is down" in line]


def last_json(out: Path) -> dict:
    return json.loads((out / ".crawler" / "last.json").read_text(encoding="utf-8"))


def job_yaml(urls: list[str], top: str = "", defaults: str = "retries: 2") -> str:
    listing = "".join(f"      - {u}\n" for u in urls)
    return f"version: 1\n{top}defaults: {{{defaults}}}\njobs:\n  - name: j\n    urls:\n{listing}"


def assert_latency_is_fetch_ms(entry: dict, sent: list[dict]) -> None:
    """A slowest_hosts entry measures fetch_ms of the requests sent (to within the 2.5 %
    buckets of its histogram), not elapsed_ms, whose waits before retries make a host that
    refuses at once look slow."""
    assert entry["requests"] == len(sent)
    median = statistics.median_low(r["fetch_ms"] for r in sent)  # as the histogram ranks
    assert median * 0.95 - 1 <= entry["median_ms"] <= median * 1.05 + 1, (entry, median)
    assert entry["max_ms"] == pytest.approx(max(r["fetch_ms"] for r in sent), abs=0.2)


async def test_a_refusing_host_is_marked_down_once(site, write_job, tmp_path):
    ip = "127.0.0.3"
    port = refusing_port(ip)
    host = f"{ip}:{port}"
    bad = [f"http://{host}/page/{n}" for n in range(60)]
    good = [f"{site.url}/text?words=good{n}" for n in range(5)]
    per_host = 4
    job = write_job(
        job_yaml(
            bad + good,
            top=f"concurrency: 8\nper_host: {per_host}\nhost_down_after: 5\n",
            defaults="retries: 2, save: bytes",
        )
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path, timeout=60)
    assert done.code == 1, done.stderr
    out = tmp_path / "out" / "job"
    records = read_manifest(out)
    mine = [r for r in records if r["url"].startswith(f"http://{host}/")]
    others = [r for r in records if r not in mine]

    # Every request of the down host is recorded, once; the other host's all succeeded.
    assert len(mine) == 60 and sorted(r["url"] for r in mine) == sorted(bad)
    assert len(others) == 5 and all(r["ok"] for r in others)
    kinds = Counter(r["error"]["kind"] for r in mine)
    assert set(kinds) <= {"connect", "host_down"}, kinds

    # Connection attempts are bounded. The breaker counts every failed attempt; when the
    # 5th in a row fails, at most per_host - 1 other attempts to that host are in flight,
    # and from then on no attempt starts (the pool settles the host's tasks, waiting
    # retries included, without a request). So at most 5 + per_host - 1 attempts in all.
    attempts = sum(r["attempts"] for r in mine)
    assert 5 <= attempts <= 5 + per_host - 1, attempts
    never_sent = [r for r in mine if r["attempts"] == 0]
    assert len(never_sent) >= 60 - (5 + per_host - 1)
    assert all(r["error"]["kind"] == "host_down" for r in never_sent)
    for r in mine:
        assert r["status"] is None and r["path"] is None and not r["ok"]
        if r["error"]["kind"] == "connect":
            assert r["attempts"] == 3  # only a request that used up its retries
        assert r["fetch_ms"] <= r["elapsed_ms"] + 0.1
    for r in never_sent:
        assert r["fetch_ms"] == 0
        assert "host_down_after" in r["error"]["message"]

    # One warning that the host is down, not one per request.
    said = down_lines(done.stderr)
    assert len(said) == 1, done.stderr
    assert host in said[0]
    assert len(warnings_of(done.stderr)) <= 1 + kinds["connect"] + 2, done.stderr

    summary = last_json(out)
    assert summary["by_kind"] == dict(kinds)
    assert (summary["requests"], summary["failed"]) == (65, 60)
    # Latency is time in attempts: the refused connects took milliseconds, so the waits
    # between retries must not make this host look slow; never-sent requests count nowhere.
    slowest = {h["host"]: h for h in summary["slowest_hosts"]}
    sent = [r for r in mine if r["attempts"]]
    if host in slowest:
        assert_latency_is_fetch_ms(slowest[host], sent)
    else:
        assert not sent


async def test_host_down_after_0_turns_the_breaker_off(write_job, tmp_path):
    ip = "127.0.0.3"
    host = f"{ip}:{refusing_port(ip)}"
    job = write_job(
        job_yaml(
            [f"http://{host}/page/{n}" for n in range(60)],
            top="concurrency: 8\nper_host: 4\nhost_down_after: 0\n",
        )
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path, timeout=90)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    assert len(records) == 60
    assert all(r["attempts"] >= 1 for r in records)
    assert all(r["attempts"] == 3 and r["error"]["kind"] == "connect" for r in records)
    assert down_lines(done.stderr) == []
    summary = last_json(tmp_path / "out" / "job")
    assert summary["by_kind"] == {"connect": 60}
    # Each request waited twice before a retry (random, 0-0.5 s then 0-1 s): elapsed_ms
    # holds those waits, fetch_ms and the host's latency figures do not.
    fetch = statistics.median(r["fetch_ms"] for r in records)
    elapsed = statistics.median(r["elapsed_ms"] for r in records)
    assert elapsed - fetch > 200, (elapsed, fetch)
    [entry] = [h for h in summary["slowest_hosts"] if h["host"] == host]
    assert_latency_is_fetch_ms(entry, records)


async def test_default_is_20_and_the_port_counts(site, write_job, tmp_path):
    """No host_down_after: 20 failures in a row, one at a time (per_host 1), then the rest is
    host_down. The site on the same address but another port is not affected."""
    port = refusing_port("127.0.0.1")
    host = f"127.0.0.1:{port}"
    bad = [f"http://{host}/page/{n}" for n in range(60)]
    good = [f"{site.url}/text?words=w{n}" for n in range(10)]
    assert site.url.startswith("http://127.0.0.1:")
    mixed = [u for pair in zip(bad, good + [""] * 50, strict=True) for u in pair if u]
    job = write_job(job_yaml(mixed, top="per_host: 1\n", defaults="retries: 0"))
    done = await crawler_cli("run", str(job), cwd=tmp_path, timeout=60)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    mine = [r for r in records if r["url"].startswith(f"http://{host}/")]
    assert len(records) == 70 and len(mine) == 60
    kinds = Counter((r["error"]["kind"], r["attempts"]) for r in mine)
    assert kinds == {("connect", 1): 20, ("host_down", 0): 40}
    assert all(r["ok"] for r in records if r not in mine)
    assert len(site.seen.requests) == 10
    assert len(down_lines(done.stderr)) == 1


async def test_http_errors_do_not_mark_a_host_down(site, write_job, tmp_path):
    """A host that answers, even with 503, is up: only connection failures count."""
    job = write_job(
        job_yaml(
            [f"{site.url}/status/503?n={n}" for n in range(30)],
            top="host_down_after: 2\nper_host: 2\n",
            defaults="retries: 0",
        )
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    assert len(records) == 30
    assert all(r["error"]["kind"] == "http" and r["attempts"] == 1 for r in records)
    assert len(site.seen.requests) == 30
    assert down_lines(done.stderr) == []


async def test_a_name_that_does_not_resolve_counts_too(write_job, tmp_path):
    """DNS failures are connection failures (c-ares refuses .onion names itself, RFC 7686:
    no query leaves the machine)."""
    job = write_job(
        job_yaml(
            [f"http://no-such-host.onion/p/{n}" for n in range(10)],
            top="host_down_after: 3\nper_host: 1\n",
            defaults="retries: 0",
        )
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    kinds = Counter((r["error"]["kind"], r["attempts"]) for r in records)
    assert kinds == {("connect", 1): 3, ("host_down", 0): 7}
    said = down_lines(done.stderr)
    assert len(said) == 1 and "no-such-host.onion" in said[0]
