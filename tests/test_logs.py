"""Log output of the installed command without a terminal (C13): warnings and one summary
line; --log-format json gives one object per line with the request's fields; -q leaves
errors and the summary line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from rich.console import Console

from crawler.logs import JsonFormatter, routed_through, setup_logging

from .conftest import crawler_cli


def _job(site, write_job):
    return write_job(f"""
        version: 1
        defaults: {{retries: 1}}
        jobs:
          - name: mixed
            urls:
              - "{site.url}/json"
              - "{site.url}/status/404"
              - "{site.url}/flaky/always?codes=503,503"
    """)


async def test_json_log_lines_carry_the_request_fields(site, write_job, tmp_path):
    done = await crawler_cli("run", str(_job(site, write_job)), "--log-format", "json")
    assert done.code == 1
    events = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert all({"time", "level", "event"} <= set(e) for e in events)
    summary = events.pop()  # the last line is the summary, with the saved summary's keys
    assert summary["event"].startswith("run ") and "3 requests" in summary["event"]
    assert summary["summary"]["failed"] == 2 and summary["summary"]["exit_code"] == 1
    failed = {e["url"]: e for e in events if e["level"] == "warning" and "url" in e}
    missing = failed[f"{site.url}/status/404"]
    assert missing["job"] == "mixed"
    assert (missing["status"], missing["kind"], missing["attempt"]) == (404, "http", 1)
    assert missing["error"] == "HTTP 404"
    assert missing["time"].endswith("Z") and missing["run"]
    flaky = failed[f"{site.url}/flaky/always?codes=503,503"]
    assert (flaky["status"], flaky["kind"], flaky["attempt"]) == (503, "http", 2)
    assert f"{site.url}/json" not in failed


async def test_text_logs_without_a_terminal_are_warnings_and_one_summary(site, write_job, tmp_path):
    done = await crawler_cli("run", str(_job(site, write_job)))
    assert done.code == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 3, done.stderr
    assert all(line.startswith("crawler: WARNING: mixed http") for line in lines[:2])
    assert lines[2].startswith("run ") and "2 failed (http 2)" in lines[2]
    assert "1 retry" in lines[2]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr


async def test_quiet_json_leaves_the_summary_line(site, write_job, tmp_path):
    done = await crawler_cli("run", str(_job(site, write_job)), "-q", "--log-format", "json")
    assert done.code == 1
    assert done.stderr.count("\n") == 1
    assert json.loads(done.stderr)["event"].startswith("run ")


def test_json_formatter_shape():
    record = logging.LogRecord("crawler.runner", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.url = "http://a.test/"
    record.status = None
    data = json.loads(JsonFormatter().format(record))
    assert data["event"] == "a b" and data["level"] == "warning"
    assert data["url"] == "http://a.test/" and data["status"] is None
    assert "job" not in data


@pytest.fixture
def cli_logging():
    """setup_logging as the command line does it; the logger as it was afterwards."""
    logger = logging.getLogger("crawler")
    saved = logger.handlers[:], logger.level, logger.propagate
    setup_logging("text", quiet=False)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_routed_through_a_console_keeps_format_and_puts_handlers_back(cli_logging):
    log = logging.getLogger("crawler.test")
    logger = cli_logging
    before = logger.handlers[:]
    out = io.StringIO()
    console = Console(file=out, width=40, color_system=None)
    long_url = "http://a.test/" + "x" * 80 + "?[bold]=1"
    with routed_through(console):
        log.warning("failed %s", long_url)
        log.info("not shown")
    assert logger.handlers == before
    # One line, not wrapped at the console's width, markup-like text left alone.
    assert out.getvalue() == f"crawler: WARNING: failed {long_url}\n"
