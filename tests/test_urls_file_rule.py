"""A urls_file line that is not an http(s) URL is data, not configuration (C17), through the
installed command: `crawler validate` and `--dry-run` warn on stderr as
`URLSFILE:LINE: warning: ...` (URLSFILE as the job file names it; the first 20 of each file,
then how many more) and exit 0; `run` records each as `invalid_url` with attempts 0 and sends
nothing for it. `URL  # note` (whitespace, then #) is a comment; `URL#frag` is a URL."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .conftest import crawler_cli, read_manifest

WARNING_RE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): warning: (?P<what>.+)$")
BAD = ["ftp://x", "http://", "http://a b/", "not a url", "example.org/page", "mailto:me@x.org"]


def write_list(tmp_path: Path, name: str, lines: list[str]) -> dict[int, str]:
    """Write a urls_file under tmp_path; returns {line number: text}."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return dict(enumerate(lines, 1))


def bad_line_numbers(numbered: dict[int, str]) -> list[int]:
    return [n for n, text in numbered.items() if text in BAD]


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " in line]


def mixed_list(base: str) -> list[str]:
    return [
        "# a comment",
        f"{base}/text?words=one",
        "ftp://x",
        "http://",
        "",
        "http://a b/",
        "not a url",
        f"{base}/text?words=two  # note",
        f"{base}/text?words=three#frag",
        "   # an indented comment",
        "example.org/page",
        f"{base}/text?words=four\t# a tab, then a note",
        "mailto:me@x.org",
    ]


GOOD = ["/text?words=one", "/text?words=two", "/text?words=three#frag", "/text?words=four"]


async def test_validate_warns_per_bad_line_as_the_job_file_names_the_file(
    site, write_job, tmp_path
):
    numbered = write_list(tmp_path, "lists/urls.txt", mixed_list(site.url))
    job = write_job("version: 1\njobs:\n  - name: bulk\n    urls_file: lists/urls.txt\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # From the job file's folder and from another one: the name is the job file's.
    for cwd, arg in ((tmp_path, "job.yaml"), (elsewhere, str(job))):
        done = await crawler_cli("validate", arg, cwd=cwd)
        assert done.code == 0, done.stderr
        assert done.stdout.strip() == f"{arg}: ok, 1 job(s)"
        lines = done.stderr.splitlines()
        assert len(lines) == len(bad_line_numbers(numbered)), done.stderr
        for line, number in zip(lines, bad_line_numbers(numbered), strict=True):
            assert line.startswith(f"lists/urls.txt:{number}: warning: "), line
            assert numbered[number] in line  # names what it found
    assert site.seen.requests == []


async def test_dry_run_warns_the_same_and_lists_the_urls(site, write_job, tmp_path):
    numbered = write_list(tmp_path, "lists/urls.txt", mixed_list(site.url))
    job = write_job("version: 1\njobs:\n  - name: bulk\n    urls_file: lists/urls.txt\n")
    validate = await crawler_cli("validate", str(job), cwd=tmp_path)
    dry = await crawler_cli("run", str(job), "--dry-run", cwd=tmp_path)
    assert dry.code == 0, dry.stderr
    assert dry.stderr.splitlines() == validate.stderr.splitlines()
    assert [int(WARNING_RE.match(w)["line"]) for w in warning_lines(dry.stderr)] == (
        bad_line_numbers(numbered)
    )
    listed = [line.split(" ")[1] for line in dry.stdout.splitlines()]
    assert listed == [f"{site.url}{path}" for path in GOOD]
    assert all(line.startswith("GET ") for line in dry.stdout.splitlines())
    assert site.seen.requests == []
    assert not (tmp_path / "out").exists()


async def test_run_records_bad_lines_as_invalid_url_never_sent(site, write_job, tmp_path):
    write_list(tmp_path, "lists/urls.txt", mixed_list(site.url))
    job = write_job(
        "version: 1\ndefaults: {retries: 3}\njobs:\n  - name: bulk\n    urls_file: lists/urls.txt\n"
    )
    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    assert len(records) == len(GOOD) + len(BAD)
    by_url = {r["url"]: r for r in records}
    for path in GOOD:
        assert by_url[f"{site.url}{path}"]["ok"], by_url[f"{site.url}{path}"]
    for text in BAD:
        record = by_url[text]
        assert record["error"]["kind"] == "invalid_url", record
        assert record["attempts"] == 0 and record["status"] is None
        assert record["path"] is None and record["final_url"] is None
        assert record["fetch_ms"] == 0
    # The server saw the good URLs only, each once, without the note or the fragment.
    assert Counter(site.seen.paths()) == {"/text": 4}
    assert sorted(r["query"] for r in site.seen.requests) == sorted(
        ["words=one", "words=two", "words=three", "words=four"]
    )
    [summary] = [line for line in done.stderr.splitlines() if line.startswith("run ")]
    assert f"{len(BAD)} failed (invalid_url {len(BAD)})" in summary


async def test_more_than_20_bad_lines_then_a_count_per_file(site, write_job, tmp_path):
    first = [f"{site.url}/json"] + [f"bad line {n}" for n in range(25)]
    second = ["ftp://a", "ftp://b", f"{site.url}/text"]
    write_list(tmp_path, "lists/urls.txt", first)
    write_list(tmp_path, "more.txt", second)
    job = write_job(
        "version: 1\ndefaults: {retries: 0}\njobs:\n"
        "  - name: a\n    urls_file: lists/urls.txt\n"
        "  - name: b\n    urls_file: more.txt\n"
    )
    for args in (("validate", str(job)), ("run", str(job), "--dry-run")):
        done = await crawler_cli(*args, cwd=tmp_path)
        assert done.code == 0, done.stderr
        lines = warning_lines(done.stderr)
        numbered = [WARNING_RE.match(line) for line in lines]
        of_first = [m for m in numbered if m and m["file"] == "lists/urls.txt"]
        assert [int(m["line"]) for m in of_first] == list(range(2, 22))  # the first 20
        count = [line for line in lines if line.startswith("lists/urls.txt: warning: ")]
        assert len(count) == 1, done.stderr
        assert "5 more" in count[0] and "25" in count[0], count[0]
        of_second = [m for m in numbered if m and m["file"] == "more.txt"]
        assert [int(m["line"]) for m in of_second] == [1, 2]
        assert not any(line.startswith("more.txt: warning: ") for line in lines)
        assert len(lines) == 20 + 1 + 2
    assert site.seen.requests == []

    done = await crawler_cli("run", str(job), cwd=tmp_path)
    assert done.code == 1, done.stderr
    records = read_manifest(tmp_path / "out" / "job")
    kinds = Counter(r["error"]["kind"] if r["error"] else "ok" for r in records)
    assert kinds == {"invalid_url": 27, "ok": 2}
    assert all(r["attempts"] == 0 for r in records if not r["ok"])
    # The run does not print a warning for each of many bad lines either.
    said = [line for line in done.stderr.splitlines() if "invalid_url" in line]
    assert len(said) <= 20 + 1 + 1, done.stderr  # at most 20, a count, the summary line


async def test_a_bad_urls_file_line_is_not_a_job_file_error_but_a_bad_url_key_is(
    write_job, tmp_path
):
    """The rule is for data: a job file's own `url` that is not http(s) stays an error."""
    write_list(tmp_path, "urls.txt", ["ftp://x"])
    ok = write_job("version: 1\njobs:\n  - name: a\n    urls_file: urls.txt\n")
    done = await crawler_cli("validate", str(ok), cwd=tmp_path)
    assert done.code == 0, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("urls.txt:1: warning: ") and "ftp://x" in line, line
    bad = write_job("version: 1\njobs:\n  - name: a\n    url: ftp://x\n", "bad.yaml")
    done = await crawler_cli("validate", str(bad), cwd=tmp_path)
    assert done.code == 2
    assert re.search(r"bad\.yaml:4: jobs\[0\]\.url: ", done.stderr), done.stderr


async def test_a_repeated_bad_line_is_warned_about_alike_by_validate_and_dry_run(
    write_job, tmp_path
):
    """Each bad line is a line to fix: validate names both, and so must the dry run (the run
    itself counts the repeated request once)."""
    write_list(tmp_path, "urls.txt", ["not a url", "http://127.0.0.1:9/a", "not a url"])
    job = write_job("version: 1\njobs:\n  - name: a\n    urls_file: urls.txt\n")
    validate = await crawler_cli("validate", str(job), cwd=tmp_path)
    dry = await crawler_cli("run", str(job), "--dry-run", cwd=tmp_path)
    assert validate.code == dry.code == 0
    assert [line.split(":")[1] for line in warning_lines(validate.stderr)] == ["1", "3"]
    assert warning_lines(dry.stderr) == warning_lines(validate.stderr)
