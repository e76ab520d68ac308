"""Read a YAML job file and validate it into frozen specs; every problem carries FILE:LINE.

The job file's keys and what they mean live here; walking the YAML nodes (so that each
problem can name its line) is yamlread.py's job. All problems are collected before raising, so a
user fixes a file in one pass. No network and no writes here.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, Problem
from ..tasks.naming import is_windows_reserved
from .spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PER_HOST,
    METHODS,
    SAVE_MODES,
    TIMEOUT_FIELDS,
    FollowSpec,
    JobFile,
    JobSpec,
    RequestDefaults,
    UrlSource,
)
from .yamlread import (
    Loader,
    Reader,
    Value,
    child_path,
    entries,
    kind_of,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_NAME_MAX = 200
# What crawler itself keeps in OUT: no job folder or jsonl file may take these names.
_OUT_RESERVED = {".crawler": "crawler's own state folder", "manifest.jsonl": "the manifest"}
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_FILENAME_FIELDS = frozenset({"host", "path", "query", "hash", "index", "ext"})
# Headers whose values are credentials: never written anywhere (C3).
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

_TOP_KEYS = ("version", "output", "concurrency", "per_host", "rate_per_host", "defaults", "jobs")
_JOB_ONLY_KEYS = ("name", "url", "urls", "urls_file", "follow")
_REQUEST_KEYS = (
    "method",
    "params",
    "headers",
    "json",
    "data",
    "form",
    "timeout",
    "save",
    "encoding",
    "retries",
    "max_bytes",
    "max_redirects",
    "conditional",
    "proxy",
    "verify",
    "filename",
)
_FOLLOW_KEYS = ("depth", "scope", "include", "exclude", "max_pages", "robots", "sitemaps")

# --- request keys ----------------------------------------------------------------------------


def _scalar_text(value: Any) -> str | None:
    """Query and form values: YAML scalars as the text a user wrote (true -> 'true')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _as_written(node: yaml.Node | None, value: Any) -> str | None:
    """A query or form value as the user wrote it: YAML 1.1 reads `yes` as true and `1.50`
    as 1.5, but `answer: yes` means the text yes."""
    if isinstance(value, bool | int | float) and isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return _scalar_text(value)


def _pairs(r: Reader, item: Value) -> tuple[tuple[str, str], ...] | None:
    """params/form: a mapping whose values are scalars or lists of scalars."""
    if not isinstance(item.node, yaml.MappingNode):
        r.problem(item, item.path, f"must be a mapping, not {kind_of(r.construct(item).value)}")
        return None
    pairs: list[tuple[str, str]] = []
    ok = True
    for key_node, value_node in entries(item.node):
        key = str(key_node.value)
        one = r.construct(Value(value_node, child_path(item.path, key), None))
        values = one.value if isinstance(one.value, list) else [one.value]
        nodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if len(nodes) != len(values):
            nodes = [None] * len(values)
        texts = [_as_written(n, v) for n, v in zip(nodes, values, strict=True)]
        if any(t is None for t in texts):
            r.problem(one, one.path, "must be a scalar or a list of scalars")
            ok = False
            continue
        pairs.extend((key, t) for t in texts if t is not None)
    return tuple(pairs) if ok else None


def _headers(r: Reader, item: Value) -> tuple[dict[str, str], set[str]] | None:
    if not isinstance(item.node, yaml.MappingNode):
        r.problem(item, item.path, "must be a mapping of header to string")
        return None
    headers: dict[str, str] = {}
    secret: set[str] = set()
    first: dict[str, int] = {}
    ok = True
    for key_node, value_node in entries(item.node):
        name = str(key_node.value)
        path = child_path(item.path, name)
        if not _HEADER_NAME_RE.match(name):
            r.problem(key_node, path, "not a valid header name")
            ok = False
            continue
        line = int(key_node.start_mark.line) + 1
        if name.lower() in first:
            r.problem(
                key_node, path, f"duplicate header (names ignore case; line {first[name.lower()]})"
            )
            ok = False
            continue
        first[name.lower()] = line
        one = r.construct(Value(value_node, path, None))
        text = _scalar_text(one.value)
        if text is None:
            r.problem(one, one.path, f"must be a string, not {kind_of(one.value)}")
            ok = False
            continue
        if any((c < " " and c != "\t") or c == "\x7f" for c in text):
            r.problem(one, one.path, "must not contain line breaks or control characters")
            ok = False
            continue
        headers[name] = text
        if one.env_filled or name.lower() in SECRET_HEADERS:
            secret.add(name.lower())
    return (headers, secret) if ok else None


def _timeout(r: Reader, item: Value) -> dict[str, float | None] | None:
    if isinstance(item.node, yaml.ScalarNode):  # `timeout: 30` is shorthand for total
        return {"total": r.number(item, allow_off=True)}
    fields = r.mapping(item.node, item.path, TIMEOUT_FIELDS)
    return {name: r.number(value, allow_off=True) for name, value in fields.items()}


def _filename(r: Reader, item: Value) -> str | None:
    value = r.text(item)
    if value is None:
        return None
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        r.problem(item, item.path, f"invalid template: {exc}")
        return None
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if field not in _FILENAME_FIELDS:
            known = ", ".join("{" + f + "}" for f in sorted(_FILENAME_FIELDS))
            r.problem(item, item.path, f"unknown placeholder {{{field}}} (known: {known})")
            return None
        if spec or conv:
            r.problem(item, item.path, f"placeholder {{{field}}} takes no format spec")
            return None
    if not value.strip("/ "):
        r.problem(item, item.path, "must name a file")
        return None
    return value


def _json_body(r: Reader, item: Value) -> Any:
    value = r.construct(item).value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        r.problem(item, item.path, f"cannot be sent as JSON: {exc}")
    return value


def _encoding(r: Reader, item: Value) -> str | None:
    value = r.text(item)
    if value is None:
        return None
    try:
        info = codecs.lookup(value)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        r.problem(item, item.path, f"unknown codec {value!r}")
        return None
    return info.name


def _method(r: Reader, item: Value) -> str | None:
    text = r.text(item)
    if text is None:
        return None
    if text.upper() not in METHODS:
        r.problem(item, item.path, f"must be one of {', '.join(METHODS)}, not {text!r}")
        return None
    return text.upper()


def _save(r: Reader, item: Value) -> str | None:
    value = r.text(item)
    if value is not None and value not in SAVE_MODES:
        r.problem(item, item.path, f"must be one of {', '.join(SAVE_MODES)}, not {value!r}")
        return None
    return value


def _proxy(r: Reader, item: Value) -> str | None:
    text = r.text(item)
    return None if text is None else r.http_url(item, text, item.path)


def _verify(r: Reader, item: Value) -> bool | Path | None:
    value = r.construct(item).value
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return r.local_path(item, must_exist=True)
    r.problem(item, item.path, f"must be true, false or a CA bundle's path, not {kind_of(value)}")
    return None


def _request_keys(r: Reader, fields: dict[str, Value]) -> dict[str, Any]:
    """Validate the request keys present in ``fields`` into plain values (absent = unset)."""
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[Value], Any]] = {
        "method": lambda v: _method(r, v),
        "params": lambda v: _pairs(r, v),
        "form": lambda v: _pairs(r, v),
        "headers": lambda v: _headers(r, v),
        "json": lambda v: _json_body(r, v),
        "data": r.text,
        "timeout": lambda v: _timeout(r, v),
        "save": lambda v: _save(r, v),
        "encoding": lambda v: _encoding(r, v),
        "retries": lambda v: r.integer(v, 0),
        "max_bytes": lambda v: r.integer(v, 1),
        "max_redirects": lambda v: r.integer(v, 0),
        "conditional": r.boolean,
        "proxy": lambda v: _proxy(r, v),
        "verify": lambda v: _verify(r, v),
        "filename": lambda v: _filename(r, v),
    }
    for key, item in fields.items():
        value = checks[key](item)
        if value is not None or key == "json":
            out[key] = value
    bodies = sorted((k for k in ("json", "data", "form") if k in fields), key=_line_of(fields))
    for extra in bodies[1:]:
        r.problem(fields[extra].node, fields[extra].path, "use at most one of json, data, form")
    return out


def _line_of(fields: dict[str, Value]) -> Callable[[str], tuple[int, int]]:
    """Sort key: where a field is written (line, column), to report the later of two."""

    def where(key: str) -> tuple[int, int]:
        mark = fields[key].node.start_mark
        return int(mark.line), int(mark.column)

    return where


def _follow(r: Reader, item: Value) -> FollowSpec | None:
    fields = r.mapping(item.node, item.path, _FOLLOW_KEYS)
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("depth",):
            values[key] = r.integer(value, 0)
        elif key == "max_pages":
            values[key] = r.integer(value, 1)
        elif key in ("robots", "sitemaps"):
            values[key] = r.boolean(value)
        elif key == "scope":
            scope = r.text(value)
            if scope is not None and scope not in ("host", "domain", "prefix"):
                r.problem(value, value.path, "must be host, domain or prefix")
            values[key] = scope
        else:
            patterns = r.construct(value).value
            if isinstance(patterns, str):
                patterns = [patterns]
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                r.problem(value, value.path, "must be a list of regexes")
                continue
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    r.problem(value, value.path, f"invalid regex {pattern!r}: {exc}")
            values[key] = tuple(patterns)
    return FollowSpec(**{k: v for k, v in values.items() if v is not None})


# --- the job file ----------------------------------------------------------------------------


def load_job_file(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> JobFile:
    """Read and validate ``path``. Raises ConfigError listing every problem found."""
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(shown, 1, "", "job file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(shown, 1, "", f"cannot read job file: {exc}")]) from None
    r = Reader(file, dict(os.environ) if environ is None else environ)
    r.shown = shown
    try:
        root = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        line, message = _yaml_error(exc, text)
        raise ConfigError([Problem(shown, line, "", f"not valid YAML: {message}")]) from None
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

    defaults: dict[str, Any] = {}
    if "defaults" in top:
        fields = r.mapping(top["defaults"].node, "defaults", _REQUEST_KEYS)
        defaults = _request_keys(r, fields)
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

    out = r.resolve(output) if output else r.file.parent / "out" / r.file.stem
    if r.problems:
        return None
    return JobFile(
        path=r.file,
        output=out,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        per_host=per_host or DEFAULT_PER_HOST,
        rate_per_host=rate,
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
    fields = r.mapping(node, path, _JOB_ONLY_KEYS + _REQUEST_KEYS)
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
    follow = _follow(r, fields["follow"]) if "follow" in fields else None
    request = _request_keys(r, {k: v for k, v in fields.items() if k in _REQUEST_KEYS})
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
    given = sorted((k for k in ("url", "urls", "urls_file") if k in fields), key=_line_of(fields))
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
    return UrlSource(urls_file=file) if file else None
