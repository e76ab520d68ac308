"""End to end through the in-process runner and the installed command."""

from __future__ import annotations

from .conftest import crawler_cli, read_manifest, run_job


async def test_get_json_and_text(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: api
            url: {site.url}/json
            save: json
          - name: pages
            urls: ["{site.url}/text?words=hi", "{site.url}/text?words=there"]
    """)
    summary = await run_job(job)
    out = tmp_path / "out" / "job"
    assert summary["exit_code"] == 0
    records = read_manifest(out)
    assert len(records) == 3
    assert all(r["ok"] for r in records)
    texts = sorted((out / r["path"]).read_text() for r in records if r["job"] == "pages")
    assert texts == ["hi", "there"]


async def test_cli_exit_1_on_failure(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 0}}
        jobs:
          - name: bad
            url: {site.url}/status/404
    """)
    done = await crawler_cli("run", str(job), "-o", str(tmp_path / "o"))
    assert done.code == 1, done.stderr
    [record] = read_manifest(tmp_path / "o")
    assert record["error"]["kind"] == "http"
    assert record["status"] == 404
