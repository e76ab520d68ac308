"""Politeness and names that do not resolve: the default User-Agent, a job's own, and DNS
failures through the aiodns resolver (no traffic leaves the machine: c-ares refuses .onion
names itself, RFC 7686)."""

from __future__ import annotations

from crawler._version import __version__

from .conftest import read_manifest, run_job


async def test_default_user_agent_names_crawler_and_version(site, write_job):
    job = write_job(f"version: 1\njobs:\n  - name: ua\n    url: {site.url}/echo\n")
    await run_job(job)
    [request] = site.seen.requests
    assert request["headers"]["User-Agent"].startswith(f"crawler/{__version__}")


async def test_job_user_agent_replaces_default(site, write_job):
    job = write_job(f"""
        version: 1
        defaults: {{headers: {{User-Agent: "team-bot/2.0"}}}}
        jobs:
          - name: ua
            url: {site.url}/echo
            headers: {{user-agent: "job-bot/3.0"}}
    """)
    await run_job(job)
    [request] = site.seen.requests
    assert request["headers"]["User-Agent"] == "job-bot/3.0"


async def test_unresolvable_host_fails_with_connect_and_others_go_on(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 1}}
        jobs:
          - name: dns
            urls: ["http://no-such-host.onion/x", "{site.url}/json", "http://localhost:{site.server.port}/json"]
    """)
    summary = await run_job(job)
    assert summary["exit_code"] == 1
    records = {r["url"]: r for r in read_manifest(tmp_path / "out" / "job")}
    failed = records["http://no-such-host.onion/x"]
    assert failed["error"]["kind"] == "connect"
    assert failed["status"] is None
    assert failed["attempts"] == 2
    assert sum(r["ok"] for r in records.values()) == 2
