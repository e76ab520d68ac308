"""`crawler demo` (and so `make demo`) run twice into one folder: the demo site takes a new
free port each time, yet the results get the same names, so the second run replaces the first
one's files instead of adding a second set."""

from __future__ import annotations

from pathlib import Path

from crawler.config.jobfile import load_job_file
from crawler.demo_site import DEMO_ENV, demo_job_path

from .conftest import crawler_cli, read_manifest


def result_files(out: Path) -> list[str]:
    """Every file under OUT but the run bookkeeping in OUT/.crawler (one summary per run)."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] != ".crawler"
    )


async def test_demo_twice_leaves_one_set_of_files(tmp_path):
    out = tmp_path / "results"
    first = await crawler_cli("demo", "-o", str(out), cwd=tmp_path)
    assert first.code == 0, first.stderr
    after_first = result_files(out)
    first_records = read_manifest(out)
    second = await crawler_cli("demo", "-o", str(out), cwd=tmp_path)
    assert second.code == 0, second.stderr
    after_second = result_files(out)

    # Each run on the free port it got (two different ones, as a rule) ...
    ports = {
        line.rsplit(":", 1)[1]
        for line in (first.stderr + second.stderr).splitlines()
        if line.startswith("demo site running at ")
    }
    assert ports, (first.stderr, second.stderr)
    records = read_manifest(out)
    assert len(records) == 2 * len(first_records) == 34
    # ... and the same files: nothing doubled, no port in any name.
    assert after_second == after_first
    assert not [f for f in after_first if any(port in f for port in ports)]
    by_run: dict[str, set[str]] = {}
    for record in records:
        by_run.setdefault(record["run"], set()).add(record["path"])
    one, two = by_run.values()
    assert one == two
    assert "pages/127.0.0.1/pages/zh.html" in one
    assert "docs/127.0.0.1/docs/index.html" in one
    assert "files/file-0.bin" in one  # the job's own template is kept
    for record in records:
        assert (out / record["path"]).is_file(), record


def test_the_demo_job_file_names_its_results_without_port_or_hash():
    """The demo job file says it itself (a user reading it sees why the names are stable):
    the default template has no port and no hash; a job's own template is kept."""
    job_file = load_job_file(demo_job_path(), {DEMO_ENV: "http://127.0.0.1:1234"})
    templates = {job.name: job.filename for job in job_file.jobs}
    assert templates["files"] == "file-{index}{ext}"
    assert templates["pages"] == templates["docs"] == "{host}/{path}{ext}"
    assert Path("configs/demo.yaml").read_text() == demo_job_path().read_text()
