"""`crawler validate` and `crawler run` on job files, through the installed command (C2, C3):
problems on stderr as FILE:LINE: key.path: message, exit 2 and nothing fetched; relative paths
against the job file's folder; secret headers sent but never written anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
from pathlib import Path

import pytest

from .conftest import crawler_cli, read_manifest
from .test_config import INVALID, marked_line

PROBLEM_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?:(?P<key>[^ :]+): )?(?P<message>.+)$")

# One case per rule, through the real command (all cases run in process in test_config.py).
CLI_CASES = {
    "top-typo",
    "defaults-typo",
    "timeout-typo",
    "headers-list",
    "url-ftp",
    "url-no-host",
    "method-unknown",
    "url-and-urls",
    "no-url",
    "missing-var",
    "missing-urls-file",
    "encoding",
    "placeholder",
    "version-2",
    "concurrency-0",
    "rate-0",
    "timeout-neg",
    "max-redirects-neg",
    "name-duplicate-case",
    "name-space",
    "dup-header",
    "json-and-data",
}


def stderr_problems(stderr: str) -> list[re.Match[str]]:
    """Every stderr line, each of which must be a FILE:LINE: problem."""
    lines = stderr.strip().splitlines()
    matches = [PROBLEM_RE.match(line) for line in lines]
    assert lines, "no problem printed"
    assert all(matches), stderr
    return [m for m in matches if m]


async def test_validate_prints_ok_and_exits_0(write_job, tmp_path):
    (tmp_path / "urls.txt").write_text(
        "# a comment\n\nhttp://127.0.0.1:9/a\n  https://example.org/b  \n", encoding="utf-8"
    )
    job = write_job("""\
        version: 1
        defaults: {timeout: {total: 0, sock_read: null}}
        jobs:
          - {name: one, url: "http://127.0.0.1:9/x"}
          - {name: bulk, urls_file: urls.txt}
    """)
    done = await crawler_cli("validate", str(job))
    assert done.code == 0, done.stderr
    assert "ok" in done.stdout
    assert done.stderr == ""


async def test_validate_exits_2_with_one_line_per_rule(tmp_path):
    cases = [c for c in INVALID if c[0] in CLI_CASES]
    assert len(cases) == len(CLI_CASES)
    gate = asyncio.Semaphore(4)

    async def check(case_id: str, text: str, key: str, words: str) -> None:
        folder = tmp_path / case_id
        folder.mkdir()
        path = folder / "job.yaml"
        path.write_text(text, encoding="utf-8")
        async with gate:
            done = await crawler_cli("validate", str(path), timeout=30)
        assert done.code == 2, (case_id, done.stderr)
        assert done.stdout == ""
        [problem] = stderr_problems(done.stderr)
        assert problem["file"] == str(path)
        assert int(problem["line"]) == marked_line(text), (case_id, done.stderr)
        assert problem["key"] == key, (case_id, done.stderr)
        assert words in problem["message"], (case_id, done.stderr)

    await asyncio.gather(*(check(*case) for case in cases))


async def test_all_problems_in_one_pass_on_stderr(write_job):
    job = write_job("""\
        version: 3
        jobs:
          - name: a
            url: http://127.0.0.1:9/a
            timeout: {total: 5, sock_red: 1}
          - name: b
            url: http://127.0.0.1:9/b
          - name: c
            url: gopher://127.0.0.1/c
            timeout:
              total: 0
              connect: -1
    """)
    done = await crawler_cli("validate", str(job))
    assert done.code == 2
    found = [(int(p["line"]), p["key"]) for p in stderr_problems(done.stderr)]
    assert found == [
        (1, "version"),
        (5, "jobs[0].timeout.sock_red"),
        (9, "jobs[2].url"),
        (12, "jobs[2].timeout.connect"),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [("jobs:\n  - name: a\n    url: {x\n", 4), ("a: b\n  c: d\n", 2), ("jobs: [\n", 2)],
    ids=["flow", "indent", "eof"],
)
async def test_invalid_yaml_is_one_line_with_its_number(write_job, text, line):
    job = write_job(text)
    done = await crawler_cli("validate", str(job))
    assert done.code == 2
    [problem] = stderr_problems(done.stderr)
    assert (problem["file"], int(problem["line"])) == (str(job), line)
    assert "not valid YAML" in problem["message"]


async def test_missing_job_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    done = await crawler_cli("validate", str(missing))
    assert done.code == 2
    assert done.stderr.strip() == f"{missing}:1: job file not found"


async def test_run_on_an_invalid_file_fetches_nothing(site, write_job, tmp_path, monkeypatch):
    job = write_job(f"""\
        version: 1
        output: results
        jobs:
          - name: good
            urls: ["{site.url}/json", "{site.url}/text"]
          - name: typo
            url: {site.url}/json
            retires: 2
          - name: needs-env
            url: {site.url}/echo
            headers: {{X-Key: "${{CRAWLER_TEST_UNSET_KEY}}"}}
    """)
    monkeypatch.delenv("CRAWLER_TEST_UNSET_KEY", raising=False)
    runs = await asyncio.gather(
        crawler_cli("run", str(job)),
        crawler_cli("run", str(job), "-o", str(tmp_path / "o2")),
        crawler_cli("run", str(job), "--dry-run"),
    )
    for done in runs:
        assert done.code == 2, done.stderr
        found = [(int(p["line"]), p["key"]) for p in stderr_problems(done.stderr)]
        assert found == [(8, "jobs[1].retires"), (11, "jobs[2].headers.X-Key")]
        assert done.stdout == ""
    assert site.seen.requests == []
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "o2").exists()


async def test_bad_lines_in_a_urls_file_are_warnings_with_their_own_line(write_job, tmp_path):
    """A urls_file line that is not a URL is data, not configuration (C17): a warning naming
    the file as the job file wrote it and the line, and exit 0."""
    urls = tmp_path / "lists" / "urls.txt"
    urls.parent.mkdir()
    urls.write_text(
        "# seeds\n"  # 1
        "http://127.0.0.1:9/ok\n"  # 2
        "\n"  # 3
        "ftp://127.0.0.1/file\n"  # 4
        "   # indented comment\n"  # 5
        "not a url\n"  # 6
        "https://example.org/fine\n"  # 7
        "http:///nohost\n",  # 8
        encoding="utf-8",
    )
    many = tmp_path / "many.txt"
    many.write_text("".join(f"bad{i}\n" for i in range(105)), encoding="utf-8")
    job = write_job("""\
        jobs:
          - name: one
            url: http://127.0.0.1:9/x
          - name: bulk
            urls_file: lists/urls.txt
          - name: lots
            urls_file: many.txt
    """)
    done = await crawler_cli("validate", str(job))
    assert done.code == 0, done.stderr
    warnings = done.stderr.splitlines()
    line_of = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): warning: ")
    from_urls = [
        int(m["line"])
        for w in warnings
        if (m := line_of.match(w)) and m["file"] == "lists/urls.txt"
    ]
    assert from_urls == [4, 6, 8]
    from_many = [w for w in warnings if w.startswith("many.txt:")]
    assert len(from_many) == 21  # the first 20, then how many more
    assert "85 more" in from_many[-1]
    assert len(warnings) == 3 + 21


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_unreadable_urls_file_is_a_problem_not_a_crash(write_job, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a\n", encoding="utf-8")
    urls.chmod(0)
    job = write_job("jobs:\n  - {name: a, urls_file: urls.txt}\n")
    done = await crawler_cli("validate", str(job))
    assert done.code == 2, done.stderr
    [problem] = stderr_problems(done.stderr)
    assert (problem["file"], problem["key"]) == (str(urls), "jobs[0].urls_file")


async def test_relative_paths_follow_the_job_file_not_the_cwd(site, tmp_path):
    project = tmp_path / "project"
    (project / "lists").mkdir(parents=True)
    (project / "lists" / "urls.txt").write_text(
        f"{site.url}/json\n{site.url}/text?words=relative\n", encoding="utf-8"
    )
    cafile = ssl.get_default_verify_paths().cafile
    if not cafile or not Path(cafile).is_file():
        pytest.skip("no CA bundle on this machine")
    shutil.copy(cafile, project / "ca.pem")
    (project / "job.yaml").write_text(
        "version: 1\n"
        "output: results\n"
        "jobs:\n"
        "  - name: bulk\n"
        "    urls_file: lists/urls.txt\n"
        "    verify: ca.pem\n",
        encoding="utf-8",
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    job = str(project / "job.yaml")
    checked, ran, flagged = await asyncio.gather(
        crawler_cli("validate", job, cwd=cwd),
        crawler_cli("run", job, cwd=cwd),
        crawler_cli("run", job, "-o", "flag-out", cwd=cwd),
    )
    assert checked.code == 0, checked.stderr
    assert ran.code == 0, ran.stderr
    records = read_manifest(project / "results")
    assert sorted(r["url"] for r in records) == [
        f"{site.url}/json",
        f"{site.url}/text?words=relative",
    ]
    assert all((project / "results" / r["path"]).is_file() for r in records)
    # -o is relative to the current directory, as the flag's help says
    assert flagged.code == 0, flagged.stderr
    assert len(read_manifest(cwd / "flag-out")) == 2
    assert sorted(p.name for p in cwd.iterdir()) == ["flag-out"]


# --- C3: secrets are sent, never written -------------------------------------------------------

SECRETS = {
    "Authorization": "Bearer auth-S3CRET-one",
    "Cookie": "sid=cookie-S3CRET-two",
    "Proxy-Authorization": "Basic proxy-S3CRET-three",
    "X-Api-Key": "env-S3CRET-four",
    "X-Signature": "v1 sig-S3CRET-five",
}
ENV = {"CRAWLER_TEST_API_KEY": "env-S3CRET-four", "CRAWLER_TEST_SIG": "sig-S3CRET-five"}


def secret_job(site_url: str) -> str:
    return f"""\
        version: 1
        defaults:
          retries: 0
          headers:
            Authorization: "Bearer auth-S3CRET-one"
            X-Api-Key: "${{CRAWLER_TEST_API_KEY}}"
        jobs:
          - name: api
            url: {site_url}/json
            save: json
            headers:
              cookie: "sid=cookie-S3CRET-two"
              Proxy-Authorization: "Basic proxy-S3CRET-three"
              X-Signature: "v1 ${{CRAWLER_TEST_SIG}}"
          - name: lines
            urls: ["{site_url}/json", "{site_url}/gzip"]
            save: jsonl
            headers: {{Cookie: "sid=cookie-S3CRET-two"}}
          - name: pages
            urls: ["{site_url}/text?words=hello", "{site_url}/bytes?size=64"]
            conditional: true
          - name: broken
            urls: ["{site_url}/status/404", "{site_url}/status/500", "{site_url}/redirect/5"]
            max_redirects: 1
            headers: {{X-Signature: "v1 ${{CRAWLER_TEST_SIG}}"}}
    """


def files_holding(root: Path, needles: list[str]) -> list[tuple[Path, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.extend((path, n) for n in needles if n.encode() in data)
    return found


async def test_secret_headers_are_sent_but_never_written(site, write_job, tmp_path):
    job = write_job(secret_job(site.url))
    text_out, json_out = tmp_path / "text-out", tmp_path / "json-out"
    text_run, json_run, dry_run = await asyncio.gather(
        crawler_cli("run", str(job), "-o", str(text_out), "--log-format", "text", env=ENV),
        crawler_cli("run", str(job), "-o", str(json_out), "--log-format", "json", env=ENV),
        crawler_cli("run", str(job), "--dry-run", env=ENV),
    )
    assert text_run.code == 1, text_run.stderr  # the broken job fails; the log says so
    assert json_run.code == 1, json_run.stderr
    assert dry_run.code == 0, dry_run.stderr

    # the server did receive every secret, on every request of the jobs that set it
    sent = site.seen.requests
    assert len(sent) == 2 * 9  # 1 + 2 + 2 + (1 + 1 + 2 redirect hops) per run
    for request in sent:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["authorization"] == SECRETS["Authorization"]
        assert headers["x-api-key"] == SECRETS["X-Api-Key"]
    by_path = {}
    for request in sent:
        by_path.setdefault(request["path"], []).append(
            {k.lower(): v for k, v in request["headers"].items()}
        )
    api = [h for h in by_path["/json"] if "proxy-authorization" in h]
    assert len(api) == 2
    assert api[0]["cookie"] == SECRETS["Cookie"]
    assert api[0]["proxy-authorization"] == SECRETS["Proxy-Authorization"]
    assert api[0]["x-signature"] == SECRETS["X-Signature"]
    assert all(h["x-signature"] == SECRETS["X-Signature"] for h in by_path["/status/404"])

    # ...and none of them is in any file under OUT, the logs, the summary or the dry run
    needles = [*SECRETS.values(), *ENV.values()]
    for out in (text_out, json_out):
        assert read_manifest(out), "the run wrote nothing to look into"
        assert (out / ".crawler" / "last.json").is_file()
        assert files_holding(out, needles) == []
    assert "404" in text_run.stderr  # a warning was logged: the check below means something
    json_lines = [json.loads(line) for line in json_run.stderr.splitlines() if line.startswith("{")]
    assert json_lines, json_run.stderr
    for done in (text_run, json_run, dry_run):
        for needle in needles:
            assert needle not in done.stdout + done.stderr
