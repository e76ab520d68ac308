"""Job files that ended `crawler validate` with a traceback (exit 1) or a problem printed
across lines, each now one `FILE:LINE: key.path: what is wrong` line and exit 2: the three of
issue 12, and what fuzzing the job file found after them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..conftest import CRAWLER_BIN
from .test_jobfile_fuzz import call

U = "http://127.0.0.1:9/y"


def one_problem(tmp_path: Path, text: str | bytes, command: str = "validate") -> str:
    """Validate a job file in process; exit 2 and exactly one problem line, which is returned
    without the file name."""
    job = tmp_path / "k.yaml"
    if isinstance(text, bytes):
        job.write_bytes(text)
    else:
        job.write_text(text, encoding="utf-8")
    argv = [command, str(job)] if command == "validate" else ["run", "--dry-run", str(job)]
    code, stdout, stderr = call(argv)
    assert code == 2, stderr
    assert not stdout
    [line] = stderr.splitlines()
    assert line.isprintable()
    assert line.startswith(f"{job}:")
    assert not list(tmp_path.glob("out*"))
    return line[len(str(job)) + 1 :]


# --- the three inputs of issue 12 -------------------------------------------------------------


def test_encoding_with_a_nul_character(tmp_path: Path) -> None:
    text = f'version: 1\njobs: [{{name: b, url: "{U}", encoding: "\\0"}}]\n'
    assert one_problem(tmp_path, text) == "2: jobs[0].encoding: unknown codec '\\x00'"


def test_verify_with_a_5000_character_path(tmp_path: Path) -> None:
    text = f'version: 1\njobs: [{{name: b, url: "{U}", verify: "{"x" * 5000}"}}]\n'
    line = one_problem(tmp_path, text)
    assert line == "2: jobs[0].verify: a file or folder name is 5000 bytes long, more than 255"


def test_a_block_key_is_printed_on_one_line(tmp_path: Path) -> None:
    text = "version: 1\njobs:\n  - name: a\n    url: http://127.0.0.1:9/\n    ? |\n      block key\n    : 1\n"
    assert one_problem(tmp_path, text) == "5: jobs[0].block key\\n: unknown key"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_three_inputs_through_the_command(tmp_path: Path, command: str) -> None:
    files = {
        "nul.yaml": f'version: 1\njobs: [{{name: b, url: "{U}", encoding: "\\0"}}]\n',
        "long.yaml": f'version: 1\njobs: [{{name: b, url: "{U}", verify: "{"x" * 5000}"}}]\n',
        "block.yaml": "version: 1\njobs:\n  - name: a\n    url: http://127.0.0.1:9/\n"
        "    ? |\n      block key\n    : 1\n",
    }
    expected = {
        "nul.yaml": "nul.yaml:2: jobs[0].encoding: unknown codec '\\x00'",
        "long.yaml": "long.yaml:2: jobs[0].verify: a file or folder name is 5000 bytes long",
        "block.yaml": "block.yaml:5: jobs[0].block key\\n: unknown key",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        args = ["validate", name] if command == "validate" else ["run", "--dry-run", name]
        done = subprocess.run(
            [CRAWLER_BIN, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(expected[name]), line
        assert not (tmp_path / "out").exists()


# --- found by fuzzing the job file ------------------------------------------------------------


def test_a_regex_repeat_too_large(tmp_path: Path) -> None:
    """re.compile raised OverflowError, which only re.error was caught for."""
    text = (
        f'version: 1\njobs: [{{name: b, url: "{U}", follow: {{include: ["a{{99999999999}}"]}}}}]\n'
    )
    line = one_problem(tmp_path, text)
    assert line.startswith("2: jobs[0].follow.include: invalid regex 'a{99999999999}': ")


def test_a_regex_nested_too_deeply(tmp_path: Path) -> None:
    """re.compile raised RecursionError."""
    pattern = "(" * 2000 + ")" * 2000
    text = f'version: 1\njobs: [{{name: b, url: "{U}", follow: {{exclude: ["{pattern}"]}}}}]\n'
    assert one_problem(tmp_path, text).startswith("2: jobs[0].follow.exclude: invalid regex")


@pytest.mark.parametrize("depth", [101, 400, 5000])
def test_nesting_too_deep(tmp_path: Path, depth: int) -> None:
    """PyYAML's composer (and json.dumps) recursed until RecursionError."""
    text = f'version: 1\njobs: [{{name: b, url: "{U}", json: {"[" * depth}{"]" * depth}}}]\n'
    assert one_problem(tmp_path, text) == "2: nested more than 100 levels deep"


def test_nesting_too_deep_in_block_style(tmp_path: Path) -> None:
    nested = "\n".join(f"{'  ' * (i + 2)}k{i}:" for i in range(120)) + " 1"
    text = f"version: 1\ndefaults:\n  json:\n{nested}\njobs: [{{name: b, url: {U}}}]\n"
    assert one_problem(tmp_path, text) == "102: nested more than 100 levels deep"


def test_aliases_nesting_too_deep(tmp_path: Path) -> None:
    """Each level is shallow in the text, but aliases nest it 40 x 5 levels deep."""
    lines = [f"a0: &a0 {'[' * 40}1{']' * 40}"]
    lines += [f"a{i}: &a{i} {'[' * 40}*a{i - 1}{']' * 40}" for i in range(1, 5)]
    text = "\n".join([*lines, f"version: 1\njobs: [{{name: b, url: {U}, json: *a4}}]\n"])
    line = one_problem(tmp_path, text)
    assert "aliases nest this value more than 100 levels deep" in line


def test_a_billion_laughs(tmp_path: Path) -> None:
    """Aliases that expand to 9^9 values: constructing and serialising them never ended."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join([*lines, f"version: 1\njobs: [{{name: b, url: {U}, json: *l8}}]\n"])
    line = one_problem(tmp_path, text)
    assert line.startswith("7: l6: aliases expand this value to 5380840 values"), line


def test_a_lone_surrogate(tmp_path: Path) -> None:
    """ "\\ud800" is a valid YAML escape but no text: it crashed encoding a data body."""
    text = f'version: 1\njobs: [{{name: b, url: "{U}", data: "\\ud800"}}]\n'
    line = one_problem(tmp_path, text)
    assert line.startswith("2: jobs[0].data: holds \\ud800"), line


def test_a_lone_surrogate_in_a_key(tmp_path: Path) -> None:
    text = f'version: 1\njobs: [{{name: b, url: "{U}", "x\\udfff": 1}}]\n'
    line = one_problem(tmp_path, text)
    assert line.startswith("2: jobs[0].x\\udfff: holds \\udfff"), line


def test_a_home_folder_of_no_user(tmp_path: Path) -> None:
    """Path.expanduser raised RuntimeError."""
    text = f"version: 1\noutput: ~nosuchuser-crawler/out\njobs: [{{name: b, url: {U}}}]\n"
    line = one_problem(tmp_path, text, command="run")
    assert line.startswith("2: output: cannot expand '~nosuchuser-crawler'"), line


def test_an_output_folder_with_a_nul(tmp_path: Path) -> None:
    text = f'version: 1\noutput: "o\\0ut"\njobs: [{{name: b, url: {U}}}]\n'
    assert one_problem(tmp_path, text) == "2: output: a path must not contain a NUL character"


def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    text = f"version: 1\njobs:\n  - name: b\n    url: {U}\n    data: caf\xe9\n".encode("latin-1")
    line = one_problem(tmp_path, text)
    assert line.startswith("5: not UTF-8: bytes e9 at line 5"), line


def test_a_key_with_a_line_separator(tmp_path: Path) -> None:
    """U+2028 and NEL break lines for some readers: escaped like newlines."""
    text = f'version: 1\njobs: [{{name: b, url: "{U}", "a\\Lb\\Nc": 1}}]\n'
    assert one_problem(tmp_path, text) == "2: jobs[0].a\\u2028b\\x85c: unknown key"
