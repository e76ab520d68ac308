"""Read a YAML job file and validate it into frozen specs; every problem carries FILE:LINE.

Validation walks PyYAML's composed nodes (not the constructed dicts) so that each problem can
name the line it sits on. All problems are collected before raising, so a user fixes a file in
one pass. No network and no writes here.
"""

from __future__ import annotations

import codecs
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

from .errors import ConfigError, Problem
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

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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


@dataclass(slots=True)
class _Value:
    """A constructed YAML value with where it came from."""

    node: yaml.Node
    path: str
    value: Any
    env_filled: bool = False

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1


class _Reader:
    """Walks one job file's nodes and collects problems."""

    def __init__(self, file: Path, environ: dict[str, str]) -> None:
        self.file = file
        self.shown = str(file)
        self.environ = environ
        self.problems: list[Problem] = []
        self._loader = yaml.SafeLoader("")

    def problem(self, where: _Value | yaml.Node, path: str, message: str) -> None:
        node = where.node if isinstance(where, _Value) else where
        line = int(node.start_mark.line) + 1
        self.problems.append(Problem(self.shown, line, path, message))

    # --- structure -------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...]) -> dict[str, _Value]:
        """The mapping's entries by key; reports unknown and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "must be a mapping")
            return {}
        out: dict[str, _Value] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                self.problem(key_node, path, "keys must be strings")
            elif key in out:
                self.problem(key_node, child, "duplicate key")
            elif key not in allowed:
                hint = _close_match(key, allowed)
                self.problem(key_node, child, f"unknown key{hint}")
            else:
                out[key] = _Value(value_node, child, None)
        return out

    def construct(self, item: _Value) -> _Value:
        """Build the plain Python value, substituting ${VAR} in every string."""
        raw = self._loader.construct_object(item.node, deep=True)
        filled = [False]
        item.value = self._substitute(raw, item, filled)
        item.env_filled = filled[0]
        return item

    def _substitute(self, raw: Any, item: _Value, filled: list[bool]) -> Any:
        if isinstance(raw, str):
            if "${" not in raw:
                return raw

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in self.environ:
                    self.problem(item, item.path, f"environment variable {name} is not set")
                    return ""
                filled[0] = True
                return self.environ[name]

            return _ENV_RE.sub(replace, raw)
        if isinstance(raw, list):
            return [self._substitute(v, item, filled) for v in raw]
        if isinstance(raw, dict):
            return {k: self._substitute(v, item, filled) for k, v in raw.items()}
        return raw

    # --- scalars ---------------------------------------------------------------------------

    def integer(self, item: _Value, minimum: int) -> int | None:
        value = self.construct(item).value
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(item, item.path, f"must be an integer, not {_kind(value)}")
            return None
        if value < minimum:
            self.problem(item, item.path, f"must be at least {minimum}, not {value}")
            return None
        return value

    def number(self, item: _Value, *, allow_off: bool) -> float | None:
        """A positive number; with allow_off, null or 0 (returned as None) turn it off."""
        value = self.construct(item).value
        if allow_off and (value is None or value == 0) and not isinstance(value, bool):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(item, item.path, f"must be a number, not {_kind(value)}")
            return None
        if value <= 0:
            self.problem(item, item.path, f"must be above 0, not {value}")
            return None
        return float(value)

    def text(self, item: _Value) -> str | None:
        value = self.construct(item).value
        if not isinstance(value, str):
            self.problem(item, item.path, f"must be a string, not {_kind(value)}")
            return None
        return value

    def boolean(self, item: _Value) -> bool | None:
        value = self.construct(item).value
        if not isinstance(value, bool):
            self.problem(item, item.path, f"must be true or false, not {_kind(value)}")
            return None
        return value

    def http_url(self, item: _Value, value: str, path: str) -> str | None:
        problem = url_problem(value)
        if problem:
            self.problem(item, path, problem)
            return None
        return value.strip()

    def local_path(self, item: _Value, *, must_exist: bool) -> Path | None:
        value = self.text(item)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.file.parent / path
        if must_exist and not path.is_file():
            self.problem(item, item.path, f"file not found: {path}")
            return None
        return path


def url_problem(value: str) -> str | None:
    """Why ``value`` is not a usable http(s) URL, or None when it is."""
    try:
        url = URL(value.strip())
    except (ValueError, TypeError) as exc:
        return f"invalid URL {value!r}: {exc}"
    if url.scheme not in ("http", "https"):
        return f"URL must be http or https: {value!r}"
    if not url.host:
        return f"URL has no host: {value!r}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "a mapping"
    )


def _close_match(key: str, allowed: tuple[str, ...]) -> str:
    import difflib

    match = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- request keys ----------------------------------------------------------------------------


def _scalar_text(value: Any) -> str | None:
    """Query and form values: YAML scalars as the text a user wrote (true -> 'true')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _pairs(r: _Reader, item: _Value) -> tuple[tuple[str, str], ...] | None:
    """params/form: a mapping whose values are scalars or lists of scalars."""
    value = r.construct(item).value
    if not isinstance(value, dict):
        r.problem(item, item.path, f"must be a mapping, not {_kind(value)}")
        return None
    pairs: list[tuple[str, str]] = []
    for key, raw in value.items():
        values = raw if isinstance(raw, list) else [raw]
        for one in values:
            text = _scalar_text(one)
            if text is None:
                r.problem(item, f"{item.path}.{key}", "must be a scalar or a list of scalars")
                return None
            pairs.append((str(key), text))
    return tuple(pairs)


def _headers(r: _Reader, item: _Value) -> tuple[dict[str, str], set[str]] | None:
    if not isinstance(item.node, yaml.MappingNode):
        r.problem(item, item.path, "must be a mapping of header to string")
        return None
    headers: dict[str, str] = {}
    secret: set[str] = set()
    for key_node, value_node in item.node.value:
        name = str(key_node.value)
        one = r.construct(_Value(value_node, f"{item.path}.{name}", None))
        text = _scalar_text(one.value)
        if text is None:
            r.problem(one, one.path, f"must be a string, not {_kind(one.value)}")
            continue
        if any(c in text for c in "\r\n\0"):
            r.problem(one, one.path, "must not contain line breaks or NUL")
            continue
        headers[name] = text
        if one.env_filled or name.lower() in SECRET_HEADERS:
            secret.add(name.lower())
    return headers, secret


def _timeout(r: _Reader, item: _Value) -> dict[str, float | None] | None:
    if isinstance(item.node, yaml.ScalarNode):  # `timeout: 30` is shorthand for total
        return {"total": r.number(item, allow_off=True)}
    fields = r.mapping(item.node, item.path, TIMEOUT_FIELDS)
    return {name: r.number(value, allow_off=True) for name, value in fields.items()}


def _filename(r: _Reader, item: _Value) -> str | None:
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


def _request_keys(r: _Reader, fields: dict[str, _Value]) -> dict[str, Any]:
    """Validate the request keys present in ``fields`` into plain values (absent = unset)."""
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[_Value], Any]] = {
        "params": lambda v: _pairs(r, v),
        "form": lambda v: _pairs(r, v),
        "headers": lambda v: _headers(r, v),
        "json": lambda v: r.construct(v).value,
        "data": r.text,
        "timeout": lambda v: _timeout(r, v),
        "retries": lambda v: r.integer(v, 0),
        "max_bytes": lambda v: r.integer(v, 1),
        "max_redirects": lambda v: r.integer(v, 0),
        "conditional": r.boolean,
        "filename": lambda v: _filename(r, v),
    }
    for key, item in fields.items():
        if key in checks:
            value = checks[key](item)
        elif key == "method":
            text = r.text(item)
            value = text.upper() if text else None
            if value and value not in METHODS:
                r.problem(item, item.path, f"must be one of {', '.join(METHODS)}, not {text!r}")
                value = None
        elif key == "save":
            value = r.text(item)
            if value is not None and value not in SAVE_MODES:
                r.problem(item, item.path, f"must be one of {', '.join(SAVE_MODES)}")
                value = None
        elif key == "encoding":
            value = r.text(item)
            if value is not None:
                try:
                    value = codecs.lookup(value).name
                except LookupError:
                    r.problem(item, item.path, f"unknown codec {value!r}")
                    value = None
        elif key == "proxy":
            text = r.text(item)
            value = text and r.http_url(item, text, item.path)
        else:  # verify
            raw = r.construct(item).value
            value = raw if isinstance(raw, bool) else r.local_path(item, must_exist=True)
        if value is not None or key == "json":
            out[key] = value
    bodies = [k for k in ("json", "data", "form") if k in fields]
    if len(bodies) > 1:
        r.problem(fields[bodies[1]], fields[bodies[1]].path, "use at most one of json, data, form")
    return out


def _follow(r: _Reader, item: _Value) -> FollowSpec | None:
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
    r = _Reader(file, dict(os.environ) if environ is None else environ)
    r.shown = shown
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ConfigError([Problem(shown, line, "", f"not valid YAML: {exc}")]) from None
    if root is None:
        raise ConfigError([Problem(shown, 1, "", "job file is empty")])
    top = r.mapping(root, "", _TOP_KEYS)
    job_file = _job_file(r, root, top)
    if r.problems or job_file is None:
        raise ConfigError(r.problems)
    return job_file


def _job_file(r: _Reader, root: yaml.Node, top: dict[str, _Value]) -> JobFile | None:
    if "version" in top and r.construct(top["version"]).value != 1:
        r.problem(top["version"], "version", "must be 1")
    output = r.text(top["output"]) if "output" in top else None
    concurrency = r.integer(top["concurrency"], 1) if "concurrency" in top else None
    per_host = r.integer(top["per_host"], 1) if "per_host" in top else None
    rate = r.number(top["rate_per_host"], allow_off=True) if "rate_per_host" in top else None

    defaults: dict[str, Any] = {}
    if "defaults" in top:
        fields = r.mapping(top["defaults"].node, "defaults", _REQUEST_KEYS)
        defaults = _request_keys(r, fields)
    base = RequestDefaults.build(defaults)

    jobs: list[JobSpec] = []
    if "jobs" not in top:
        r.problem(root, "jobs", "required: a list of jobs")
    elif not isinstance(top["jobs"].node, yaml.SequenceNode) or not top["jobs"].node.value:
        r.problem(top["jobs"], "jobs", "must be a non-empty list of jobs")
    else:
        seen: dict[str, int] = {}
        for index, node in enumerate(top["jobs"].node.value):
            job = _job(r, node, f"jobs[{index}]", base)
            if job is None:
                continue
            folded = job.name.lower()
            if folded in seen:
                r.problem(node, f"jobs[{index}].name", f"duplicate job name {job.name!r}")
            seen[folded] = index
            jobs.append(job)

    stem = r.file.stem
    out = Path(output) if output else Path("out") / stem
    if not out.is_absolute():
        out = r.file.parent / out
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


def _job(r: _Reader, node: yaml.Node, path: str, base: RequestDefaults) -> JobSpec | None:
    fields = r.mapping(node, path, _JOB_ONLY_KEYS + _REQUEST_KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None
    name = None
    if "name" not in fields:
        r.problem(node, f"{path}.name", "required")
    else:
        name = r.text(fields["name"])
        if name is not None and (not _NAME_RE.match(name) or name in (".", "..")):
            r.problem(fields["name"], f"{path}.name", "use only letters, digits, '.', '_', '-'")
            name = None
    source = _source(r, node, path, fields)
    follow = _follow(r, fields["follow"]) if "follow" in fields else None
    request = _request_keys(r, {k: v for k, v in fields.items() if k in _REQUEST_KEYS})
    if name is None or source is None:
        return None
    return base.job(name=name, line=fields["name"].line, source=source, follow=follow, **request)


def _source(r: _Reader, node: yaml.Node, path: str, fields: dict[str, _Value]) -> UrlSource | None:
    given = [k for k in ("url", "urls", "urls_file") if k in fields]
    if not given:
        r.problem(node, path, "needs one of url, urls, urls_file")
        return None
    if len(given) > 1:
        r.problem(fields[given[1]], fields[given[1]].path, "use only one of url, urls, urls_file")
        return None
    item = fields[given[0]]
    if given[0] == "url":
        text = r.text(item)
        url = text and r.http_url(item, text, item.path)
        return UrlSource(urls=(url,)) if url else None
    if given[0] == "urls":
        value = r.construct(item).value
        if not isinstance(value, list) or not value:
            r.problem(item, item.path, "must be a non-empty list of URLs")
            return None
        urls: list[str] = []
        items = item.node.value if isinstance(item.node, yaml.SequenceNode) else []
        for i, one in enumerate(value):
            where = _Value(items[i], f"{item.path}[{i}]", one) if i < len(items) else item
            if not isinstance(one, str):
                r.problem(where, where.path, f"must be a URL string, not {_kind(one)}")
            elif (checked := r.http_url(where, one, where.path)) is not None:
                urls.append(checked)
        return UrlSource(urls=tuple(urls)) if len(urls) == len(value) else None
    file = r.local_path(item, must_exist=True)
    return UrlSource(urls_file=file) if file else None
