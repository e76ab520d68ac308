"""Generated and mutated job files (issue 12): `crawler validate` and `crawler run --dry-run`
exit 0 or 2 and nothing else, every problem is one `FILE:LINE: key.path: what` line, and
nothing is written next to the job file. Most examples run in process (crawler.cli.main);
a few through the installed command."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tempfile
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crawler.cli import main
from crawler.config.jobfile import load_job_file
from crawler.config.requestkeys import REQUEST_KEYS
from crawler.errors import ConfigError

from ..conftest import CRAWLER_BIN
from .conftest import examples
from .jobfiles import job_file_bytes

LINE_RE = re.compile(r"^(?P<file>.+?):(?P<line>[1-9][0-9]*): (?P<rest>\S.*)$")


def call(argv: list[str]) -> tuple[int, str, str]:
    """crawler.cli.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: only ever 2 (a usage error)
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A job file's folder with what valid job files refer to: urls.txt and ca.pem."""
    tmp = tempfile.TemporaryDirectory(prefix="crawler-fuzz-")
    folder = Path(tmp.name)
    (folder / "urls.txt").write_text("http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b\n")
    (folder / "ca.pem").write_text("not really a bundle\n")
    return tmp


def check_problem_lines(job: Path, code: int, stderr: str) -> None:
    """Exit 2: stderr is exactly the problems of the job file, one line each, each
    `FILE:LINE: key.path: message` (or `FILE:LINE: message` when no key is at fault)."""
    assert code == 2
    lines = stderr.splitlines()  # also splits on \x85, \u2028 and other line breaks
    assert lines, "exit 2 and no problem printed"
    try:
        load_job_file(job)
    except ConfigError as exc:
        expected = exc.problems
    else:
        raise AssertionError(f"exit 2 for a job file that loads: {stderr}")
    assert len(lines) == len(expected), stderr
    for line, problem in zip(lines, expected, strict=True):
        match = LINE_RE.match(line)
        assert match, line
        assert match["file"] == str(job), line
        assert int(match["line"]) == problem.line
        if problem.path:
            assert match["rest"].startswith(f"{str(problem).split(': ', 2)[1]}: "), line
        assert line == str(problem)
        assert line.isprintable(), line


def check(job: Path, raw: bytes) -> None:
    folder = job.parent
    job.write_bytes(raw)
    before = files_in(folder)
    for argv in (["validate", str(job)], ["run", "--dry-run", str(job)]):
        code, stdout, stderr = call(argv)
        assert code in (0, 2), (argv, code, stderr[-2000:])
        if code == 2:
            check_problem_lines(job, code, stderr)
            assert not stdout
        else:
            assert not stderr, stderr  # urls.txt holds URLs only: no warnings
            assert stdout
        assert files_in(folder) == before, "validate/--dry-run wrote files"


@given(raw=job_file_bytes())
def test_generated_job_files_exit_0_or_2_with_one_line_problems(raw: bytes) -> None:
    with scratch() as tmp:
        check(Path(tmp) / "job.yaml", raw)


@settings(max_examples=examples(0.1, at_least=3))
@given(raw=job_file_bytes())
def test_generated_job_files_through_the_command(raw: bytes) -> None:
    with scratch() as tmp:
        job = Path(tmp) / "job.yaml"
        job.write_bytes(raw)
        before = files_in(job.parent)
        env = {k: v for k, v in os.environ.items() if k != "CRAWLER_FUZZ_UNSET"}
        for args in (["validate", str(job)], ["run", "--dry-run", str(job)]):
            done = subprocess.run(
                [CRAWLER_BIN, *args], capture_output=True, text=True, env=env, timeout=60
            )
            assert done.returncode in (0, 2), done.stderr[-2000:]
            assert "Traceback" not in done.stderr
            if done.returncode == 2:
                check_problem_lines(job, 2, done.stderr)
        assert files_in(job.parent) == before


@given(
    key=st.text(min_size=1, max_size=20),
    value=st.sampled_from(["1", "x", "[1, 2]", "{a: 1}", "null"]),
)
def test_any_unknown_key_is_named_on_one_line(key: str, value: str) -> None:
    """Whatever characters a key holds (written double-quoted, so any can be), the problem
    names it on one line."""
    assume(key not in (*REQUEST_KEYS, "name", "url", "urls", "urls_file", "follow"))
    escaped = "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08x}" for c in key)
    text = (
        f'version: 1\njobs:\n  - name: a\n    url: http://127.0.0.1:9/\n    "{escaped}": {value}\n'
    )
    with scratch() as tmp:
        job = Path(tmp) / "job.yaml"
        job.write_text(text, encoding="utf-8")
        code, _, stderr = call(["validate", str(job)])
        check_problem_lines(job, code, stderr)
        assert stderr.startswith(f"{job}:5: jobs[0].")
