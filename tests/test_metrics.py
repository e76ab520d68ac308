"""`crawler run --metrics FILE`: Prometheus text format for node_exporter's textfile
collector, replaced atomically, parsed here with the Prometheus client's own parser."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crawler.report.metrics import ERROR_KINDS, previous_timestamps, render_metrics

from .conftest import crawler_cli


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels without crawl): value}; the parser raises on
    anything the format does not allow."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        assert family.documentation
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("crawl")
            found[(s.name, tuple(sorted(labels.items())))] = s.value
    return found


SUMMARY = {
    "started_at": "2024-05-01T02:15:00.000Z",
    "finished_at": "2024-05-01T02:16:40.500Z",
    "duration_s": 100.5,
    "requests": 10,
    "ok": 7,
    "failed": 3,
    "by_kind": {"http": 2, "timeout": 1},
    "by_status": {"200": 7, "404": 2},
    "bytes": 12345,
    "retries": 4,
    "exit_code": 1,
}


def test_render_metrics():
    got = samples(render_metrics(SUMMARY, 'night"ly'))
    assert got[("crawler_last_run_start_timestamp_seconds", ())] == 1714529700.0
    assert got[("crawler_last_run_end_timestamp_seconds", ())] == 1714529800.5
    assert got[("crawler_last_run_duration_seconds", ())] == 100.5
    assert got[("crawler_last_run_exit_code", ())] == 1
    assert got[("crawler_last_success_timestamp_seconds", ())] == 0  # never exited 0
    assert got[("crawler_last_completed_timestamp_seconds", ())] == 1714529800.5
    assert got[("crawler_last_run_requests", (("outcome", "ok"),))] == 7
    assert got[("crawler_last_run_requests", (("outcome", "failed"),))] == 3
    for kind in ERROR_KINDS:
        expected = SUMMARY["by_kind"].get(kind, 0)
        assert got[("crawler_last_run_failures", (("kind", kind),))] == expected
    assert got[("crawler_last_run_responses", (("status", "404"),))] == 2
    assert got[("crawler_last_run_bytes", ())] == 12345
    assert got[("crawler_last_run_retries", ())] == 4


@pytest.mark.parametrize(
    ("exit_code", "success", "completed"),
    [(0, "now", "now"), (1, "before", "now"), (4, "before", "before"), (130, "before", "before")],
)
def test_success_and_completion_times_outlive_a_bad_run(exit_code, success, completed):
    earlier = {
        "crawler_last_success_timestamp_seconds": 111.0,
        "crawler_last_completed_timestamp_seconds": 222.0,
    }
    got = samples(render_metrics({**SUMMARY, "exit_code": exit_code}, "c", earlier))
    end = 1714529800.5
    assert got[("crawler_last_success_timestamp_seconds", ())] == (
        end if success == "now" else 111.0
    )
    assert got[("crawler_last_completed_timestamp_seconds", ())] == (
        end if completed == "now" else 222.0
    )


def _job(write_job, urls):
    lines = "".join(f'\n              - "{u}"' for u in urls)
    return write_job(f"""
        version: 1
        defaults: {{retries: 0, save: bytes}}
        jobs:
          - name: j
            urls:{lines}
    """)


async def test_metrics_file_after_runs(site, write_job, tmp_path):
    prom = tmp_path / "textfile" / "crawl.prom"
    prom.parent.mkdir()
    before = time.time()
    good = _job(write_job, [f"{site.url}/json", f"{site.url}/bytes?size=5000"])
    done = await crawler_cli("run", str(good), "--metrics", str(prom), "-o", "out")
    assert done.code == 0, done.stderr
    first = samples(prom.read_text())
    assert first[("crawler_last_run_exit_code", ())] == 0
    assert first[("crawler_last_run_requests", (("outcome", "ok"),))] == 2
    assert first[("crawler_last_run_bytes", ())] > 5000
    start = first[("crawler_last_run_start_timestamp_seconds", ())]
    end = first[("crawler_last_run_end_timestamp_seconds", ())]
    assert before - 1 <= start <= end <= time.time() + 1
    assert first[("crawler_last_success_timestamp_seconds", ())] == end
    assert prom.stat().st_mode & 0o444 == 0o444  # the collector's user can read it
    assert [p.name for p in prom.parent.iterdir()] == ["crawl.prom"]  # no temp file left

    bad = _job(write_job, [f"{site.url}/json", f"{site.url}/status/500"])
    done = await crawler_cli("run", str(bad), "--metrics", str(prom), "-o", "out", "--fresh")
    assert done.code == 1
    second = samples(prom.read_text())
    assert second[("crawler_last_run_exit_code", ())] == 1
    assert second[("crawler_last_run_failures", (("kind", "http"),))] == 1
    assert second[("crawler_last_run_responses", (("status", "500"),))] == 1
    assert second[("crawler_last_success_timestamp_seconds", ())] == end  # the first run's
    assert second[("crawler_last_completed_timestamp_seconds", ())] > end
    assert previous_timestamps(prom)["crawler_last_success_timestamp_seconds"] == end
    assert [p.name for p in prom.parent.iterdir()] == ["crawl.prom"]


async def test_metrics_of_an_invalid_job_file_say_exit_2(write_job, tmp_path):
    job = write_job("version: 2\njobs: []\n", "broken.yaml")
    prom = tmp_path / "m.prom"
    done = await crawler_cli("run", str(job), "--metrics", str(prom))
    assert done.code == 2
    got = samples(prom.read_text())
    assert got[("crawler_last_run_exit_code", ())] == 2
    assert got[("crawler_last_success_timestamp_seconds", ())] == 0
    assert 'crawl="broken"' in prom.read_text()


async def test_metrics_into_a_missing_folder_is_a_usage_error(site, write_job, tmp_path):
    job = _job(write_job, [f"{site.url}/json"])
    done = await crawler_cli("run", str(job), "--metrics", str(tmp_path / "nope" / "m.prom"))
    assert done.code == 2
    assert "nope" in done.stderr
    assert not site.seen.requests  # nothing fetched
