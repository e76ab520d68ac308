"""Random urls_file lines (issue 12): spaces, IDNA, IPv6 literals, percent junk, very long lines,
CRLF, NUL, BOM, invalid UTF-8. Expanding them never raises; every line that is not blank or a
comment becomes a task, with a usable URL or marked invalid (C17); `crawler validate` and
`--dry-run` exit 0 and print each invalid line as one `URLSFILE:LINE: warning:` line."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from crawler.config.jobfile import load_job_file
from crawler.tasks.dedupe import first_only
from crawler.tasks.expand import FetchTask, expand_job
from crawler.tasks.validate import MAX_REPORTED

from .test_jobfile_fuzz import call

PARTS = [
    "http://",
    "https://",
    "HTTP://",
    "hTTps://",
    "ftp://",
    "//",
    "http:/",
    "http:",
    "mailto:",
    "javascript:",
    "127.0.0.1",
    "example.org",
    "a",
    "b.c",
    "[::1]",
    "[1:2]",
    "[fe80::1%25eth0]",
    "[v1.x]",
    "[",
    "]",
    ":80",
    ":0",
    ":65536",
    ":99999999999999999999",
    ":-1",
    ":",
    "/",
    "//",
    "?",
    "?a=1&b",
    "#",
    "#frag",
    " #c",
    "%",
    "%zz",
    "%00",
    "%2F",
    "%41",
    "%%%",
    "@",
    "user:pw@",
    " ",
    "\t",
    "\0",
    "\x01",
    "\x7f",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
    "\ufeff",
    "é",
    "bücher.de",
    "xn--",
    "xn--zz",
    "xn--bcher-kva.de",
    "..",
    ".",
    "\u3002",
    "ａ",
    "ß",
    "\U0001f600",
    "\\",
    "a" * 64,
    "a" * 300,
    ";",
    ",",
    "=",
    "&",
    "'",
    '"',
    "<",
    ">",
    "^",
    "`",
    "{",
    "|",
    "}",
    "\ud800",
]
LINE = st.one_of(
    st.lists(st.sampled_from(PARTS), min_size=1, max_size=8).map("".join),
    st.builds(lambda a, b: f"http://{a}/{b}", st.text(max_size=12), st.text(max_size=12)),
    st.text(max_size=30),
    st.integers(2000, 100_000).map(lambda n: "http://127.0.0.1:9/" + "x" * n),
    st.sampled_from(["", "   ", "# comment", "  # indented comment", "http://a/ # note"]),
)
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]


@st.composite
def urls_files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(LINE, min_size=1, max_size=30))
    parts = [line.encode("utf-8", "surrogatepass") for line in lines]
    for _ in range(draw(st.integers(0, 2))):  # bytes that are not UTF-8
        i = draw(st.integers(0, len(parts) - 1))
        at = draw(st.integers(0, len(parts[i])))
        parts[i] = parts[i][:at] + draw(st.sampled_from(BAD_BYTES)) + parts[i][at:]
    data = draw(NEWLINES).encode().join(parts)
    if draw(st.booleans()):
        data += b"\n"
    if draw(st.integers(0, 4)) == 0:
        data = b"\xef\xbb\xbf" + data  # a BOM, as some editors write
    return data


def source_lines(data: bytes) -> list[int]:
    """The numbers of the lines that are neither blank nor a comment: each must give a task.
    Independent of crawler: Python's universal newlines and str.strip."""
    text = data.decode("utf-8-sig", errors="replace")
    # File iteration in text mode splits on \n, \r and \r\n only (not on \x85 or \u2028).
    lines = re.split(r"\r\n|\r|\n", text)
    numbers = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            numbers.append(number)
    return numbers


def check_usable(task: FetchTask) -> None:
    """A task that is not invalid can be sent: an absolute http(s) URL with an ASCII host,
    whose text (as the manifest records it) reads back as the same URL."""
    url = task.url
    assert url.scheme in ("http", "https"), task.url_text
    assert url.raw_host and url.raw_host.isascii(), task.url_text
    assert url.port is not None and 0 <= url.port <= 65535, task.url_text
    text = str(url)
    assert text.isascii() and text.isprintable() and " " not in text, text
    assert str(URL(text)) == text
    assert task.url_text == text
    assert task.host == f"{url.raw_host}:{url.port}"
    assert not re.search(r"\s", task.url_text)


def scratch(data: bytes) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    tmp = tempfile.TemporaryDirectory(prefix="crawler-fuzz-")
    folder = Path(tmp.name)
    (folder / "urls.txt").write_bytes(data)
    job = folder / "job.yaml"
    job.write_text("version: 1\njobs: [{name: a, urls_file: urls.txt}]\n", encoding="utf-8")
    return tmp, job


@given(data=urls_files())
@example(data=b"http://[::1]@\n")  # yarl raised IndexError: a crash of any run
@example(data=b"http://[1:2]/\nhttp://%2F/\n")  # read back as other URLs
@example(data=b"\xef\xbb\xbfhttp://127.0.0.1:9/a\r\nhttp://127.0.0.1:9/\xff\r\n")
@example(data=b"0://%\xc2\x80\xc2\xb8")  # yarl's message quoted a raw C1 control (\x80)
def test_every_line_is_a_task_with_a_usable_url_or_invalid(data: bytes) -> None:
    tmp, job = scratch(data)
    with tmp:
        job_file = load_job_file(job)
        tasks = list(expand_job(job_file.jobs[0]))
        assert [t.line for t in tasks] == source_lines(data)
        assert [t.index for t in tasks] == list(range(len(tasks)))
        for task in tasks:
            if task.invalid is not None:
                assert task.invalid and task.host == ""
            else:
                check_usable(task)

        invalid = [t for t in tasks if t.invalid is not None]
        code, stdout, stderr = call(["validate", str(job)])
        assert code == 0, stderr
        assert stdout == f"{job}: ok, 1 job(s)\n"
        check_warnings(stderr, invalid)

        before = sorted(p.name for p in Path(tmp.name).iterdir())
        code, stdout, stderr = call(["run", "--dry-run", str(job)])
        assert code == 0, stderr
        unique = list(first_only(iter(tasks)))
        sent = [t for t in unique if t.invalid is None]
        assert stdout.count("\n") == len(sent)
        for line, task in zip(stdout.split("\n"), sent, strict=False):
            assert line.startswith(f"GET {task.url_text} -> "), line
        check_warnings(stderr, invalid)  # every line that is not a URL, repeats too (C17)
        assert sorted(p.name for p in Path(tmp.name).iterdir()) == before


def check_warnings(stderr: str, invalid: list[FetchTask]) -> None:
    """The first MAX_REPORTED invalid lines, one printable line each, then how many more."""
    lines = stderr.splitlines()
    shown = invalid[:MAX_REPORTED]
    more = len(invalid) - len(shown)
    assert len(lines) == len(shown) + (1 if more else 0), stderr
    for line, task in zip(lines, shown, strict=False):
        assert line.startswith(f"urls.txt:{task.line}: warning: "), line
        assert line.isprintable(), line
    if more:
        assert lines[-1].startswith(f"urls.txt: warning: {more} more lines"), lines[-1]
