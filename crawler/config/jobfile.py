"""Read a YAML job file and validate it into frozen specs; every problem carries FILE:LINE.

The job file's keys and what they mean live here; walking the YAML nodes (so that each
problem can name its line) is yamlread.py's job. All problems are collected before raising, so a
user fixes a file in one pass. No network and no writes here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, Problem
from ..tasks.naming import is_windows_reserved
from .requestkeys import REQUEST_KEYS, follow_spec, line_of, request_keys
from .spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HOST_DOWN_AFTER,
    DEFAULT_PER_HOST,
    JobFile,
    JobSpec,
    RequestDefaults,
    UrlSource,
)
from .yamlread import (
    MAX_NESTING,
    Loader,
    Reader,
    Value,
    kind_of,
    nesting_too_deep,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_NAME_MAX = 200
# What crawler itself keeps in OUT: no job folder or jsonl file may take these names.
_OUT_RESERVED = {".crawler": "crawler's own state folder", "manifest.jsonl": "the manifest"}
_TOP_KEYS = (
    "version",
    "output",
    "concurrency",
    "per_host",
    "rate_per_host",
    "host_down_after",
    "defaults",
    "jobs",
)
_JOB_ONLY_KEYS = ("name", "url", "urls", "urls_file", "follow")

# --- the job file ----------------------------------------------------------------------------


def load_job_file(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> JobFile:
    """Read and validate ``path``. Raises ConfigError listing every problem found."""
    file = Path(path)
    shown = str(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(shown, 1, "", "job file not found")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([Problem(shown, 1, "", f"cannot read job file: {reason}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex(" ")
        message = f"not UTF-8: bytes {bad} at line {line}; save the job file as UTF-8"
        raise ConfigError([Problem(shown, line, "", message)]) from None
    r = Reader(file, dict(os.environ) if environ is None else environ)
    r.shown = shown
    try:
        deep = nesting_too_deep(text)
        if deep is not None:
            message = f"nested more than {MAX_NESTING} levels deep"
            raise ConfigError([Problem(shown, deep, "", message)])
        root = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        line, message = _yaml_error(exc, text)
        raise ConfigError([Problem(shown, line, "", f"not valid YAML: {message}")]) from None
    try:
        return _validate(r, root)
    except RecursionError:  # the nesting checks should make this unreachable
        message = "too deeply nested to read"
        raise ConfigError([*r.problems, Problem(shown, 1, "", message)]) from None


def _validate(r: Reader, root: yaml.Node | None) -> JobFile:
    shown = r.shown
    if root is None:
        raise ConfigError([Problem(shown, 1, "", "job file is empty")])
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            [Problem(shown, root.start_mark.line + 1, "", "must be a mapping with a jobs list")]
        )
    if not r.check_tree(root):
        raise ConfigError(r.problems)
    top = r.mapping(root, "", _TOP_KEYS)
    job_file = _job_file(r, root, top)
    if r.problems or job_file is None:
        raise ConfigError(r.problems)
    return job_file


def _yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line and a one-line description of a YAML syntax error."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return line, f"unacceptable character #x{exc.character:04x}"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = int(mark.line) + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None)
    if not problem:
        return line, (str(exc).splitlines() or [type(exc).__name__])[0]
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context:
        where = ""
        if context_mark is not None and int(context_mark.line) + 1 != line:
            where = f" on line {int(context_mark.line) + 1}"
        problem = f"{problem} ({context}{where})"
    return line, str(problem)


def _job_file(r: Reader, root: yaml.Node, top: dict[str, Value]) -> JobFile | None:
    if "version" in top:
        version = r.construct(top["version"]).value
        if isinstance(version, bool) or version != 1:
            r.problem(top["version"], "version", f"must be 1, not {version!r}")
    output = None
    if "output" in top:
        output = r.text(top["output"])
        if output is not None and not output.strip():
            r.problem(top["output"], "output", "must not be empty")
    concurrency = r.integer(top["concurrency"], 1) if "concurrency" in top else None
    per_host = r.integer(top["per_host"], 1) if "per_host" in top else None
    rate = r.number(top["rate_per_host"], allow_off=False) if "rate_per_host" in top else None
    host_down = r.integer(top["host_down_after"], 0) if "host_down_after" in top else None

    defaults: dict[str, Any] = {}
    if "defaults" in top:
        fields = r.mapping(top["defaults"].node, "defaults", REQUEST_KEYS)
        defaults = request_keys(r, fields)
    base = RequestDefaults(defaults)

    jobs: list[JobSpec] = []
    if "jobs" not in top:
        r.problem(root, "jobs", "required: a list of jobs")
    elif not isinstance(top["jobs"].node, yaml.SequenceNode) or not top["jobs"].node.value:
        r.problem(top["jobs"], "jobs", "must be a non-empty list of jobs")
    else:
        names: list[_JobName] = []
        for index, node in enumerate(top["jobs"].node.value):
            named, job = _job(r, node, index, base)
            if named is not None:
                names.append(named)
            if job is not None:
                jobs.append(job)
        _check_job_names(r, names)

    out = r.file.parent / "out" / r.file.stem
    if output:
        out = r.resolve_path(top["output"], output) or out
    if r.problems:
        return None
    return JobFile(
        path=r.file,
        output=out,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        per_host=per_host or DEFAULT_PER_HOST,
        rate_per_host=rate,
        host_down_after=DEFAULT_HOST_DOWN_AFTER if host_down is None else host_down,
        jobs=tuple(jobs),
    )


@dataclass(slots=True)
class _JobName:
    """A job's valid name, where it is, and what it writes directly in OUT."""

    index: int
    name: str
    line: int
    jsonl: bool

    def outputs(self) -> list[str]:
        """Its folder, and ``<name>.jsonl`` for save: jsonl."""
        return [self.name, f"{self.name}.jsonl"] if self.jsonl else [self.name]


def _check_job_names(r: Reader, names: list[_JobName]) -> None:
    """Job names are unique ignoring case (folders on macOS and Windows), and no two jobs, nor
    a job and crawler itself, write the same name in OUT."""
    taken: dict[str, str] = dict(_OUT_RESERVED)
    first: dict[str, int] = {}
    for job in names:
        where = f"jobs[{job.index}].name"
        folded = job.name.lower()
        if folded in first:
            message = f"duplicate job name {job.name!r} (names ignore case; line {first[folded]})"
            r.problem_on(job.line, where, message)
            continue
        first[folded] = job.line
        clash = next((n for n in job.outputs() if n.lower() in taken), None)
        if clash is not None:
            r.problem_on(job.line, where, f"OUT/{clash} would clash with {taken[clash.lower()]}")
            continue
        for name in job.outputs():
            taken[name.lower()] = f"job {job.name!r}"


def _job(
    r: Reader, node: yaml.Node, index: int, base: RequestDefaults
) -> tuple[_JobName | None, JobSpec | None]:
    path = f"jobs[{index}]"
    fields = r.mapping(node, path, _JOB_ONLY_KEYS + REQUEST_KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None, None
    name = None
    if "name" not in fields:
        r.problem(node, f"{path}.name", "required")
    else:
        name = r.text(fields["name"])
        problem = None if name is None else _name_problem(name)
        if problem:
            r.problem(fields["name"], f"{path}.name", problem)
            name = None
    source = _source(r, node, path, fields)
    follow = follow_spec(r, fields["follow"]) if "follow" in fields else None
    request = request_keys(r, {k: v for k, v in fields.items() if k in REQUEST_KEYS})
    if name is None:
        return None, None
    line = fields["name"].line
    job = None
    if source is not None:
        job = base.job(name=name, line=line, source=source, follow=follow, **request)
    jsonl = (job.save if job else request.get("save", base.values.get("save"))) == "jsonl"
    return _JobName(index, name, line, jsonl), job


def _name_problem(name: str) -> str | None:
    if not _NAME_RE.match(name) or name in (".", ".."):
        return "use only letters, digits, '.', '_', '-'"
    if len(name) > _NAME_MAX:
        return f"at most {_NAME_MAX} characters, not {len(name)}"
    if is_windows_reserved(name) or name.endswith("."):
        return f"{name!r} cannot name a folder on Windows"
    return None


def _source(r: Reader, node: yaml.Node, path: str, fields: dict[str, Value]) -> UrlSource | None:
    given = sorted((k for k in ("url", "urls", "urls_file") if k in fields), key=line_of(fields))
    if not given:
        r.problem(node, path, "needs one of url, urls, urls_file")
        return None
    if len(given) > 1:
        for extra in given[1:]:
            r.problem(
                fields[extra].node, fields[extra].path, "use only one of url, urls, urls_file"
            )
        return None
    item = fields[given[0]]
    if given[0] == "url":
        text = r.text(item)
        url = None if text is None else r.http_url(item, text, item.path)
        return UrlSource(urls=(url,)) if url is not None else None
    if given[0] == "urls":
        value = r.construct(item).value
        if not isinstance(value, list) or not value:
            r.problem(item, item.path, "must be a non-empty list of URLs")
            return None
        urls: list[str] = []
        items = item.node.value if isinstance(item.node, yaml.SequenceNode) else []
        for i, one in enumerate(value):
            where = Value(items[i], f"{item.path}[{i}]", one) if i < len(items) else item
            if not isinstance(one, str):
                r.problem(where, where.path, f"must be a URL string, not {kind_of(one)}")
            elif (checked := r.http_url(where, one, where.path)) is not None:
                urls.append(checked)
        return UrlSource(urls=tuple(urls)) if len(urls) == len(value) else None
    file = r.local_path(item, must_exist=True)
    written = r.construct(item).value
    return UrlSource(urls_file=file, urls_file_as_written=str(written)) if file else None
