"""The request keys a job (or ``defaults``) may hold, each read and checked into plain values;
every problem names its FILE:LINE and key path. jobfile.py assembles them into specs.
"""

from __future__ import annotations

import codecs
import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .spec import (
    METHODS,
    SAVE_MODES,
    TIMEOUT_FIELDS,
    FollowSpec,
)
from .yamlread import (
    Reader,
    Value,
    child_path,
    entries,
    kind_of,
)

_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_FILENAME_FIELDS = frozenset({"host", "path", "query", "hash", "index", "ext"})
# Headers whose values are credentials: never written anywhere (C3).
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


REQUEST_KEYS = (
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
    "record_headers",
    "cookies",
    "keep_cookies",
    "warc_decompress",
)
FOLLOW_KEYS = (
    "depth",
    "scope",
    "include",
    "exclude",
    "max_pages",
    "robots",
    "sitemaps",
    "assets",
    "assets_scope",
)

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


def _cookies(r: Reader, item: Value) -> tuple[tuple[str, str], ...] | None:
    """cookies: a mapping of cookie name to value (a string, number or boolean)."""
    if not isinstance(item.node, yaml.MappingNode):
        r.problem(item, item.path, "must be a mapping of cookie name to value")
        return None
    cookies: list[tuple[str, str]] = []
    ok = True
    for key_node, value_node in entries(item.node):
        name = str(key_node.value)
        path = child_path(item.path, name)
        if not _HEADER_NAME_RE.match(name):
            r.problem(key_node, path, "not a valid cookie name (letters, digits, !#$%&'*+.^_`|~-)")
            ok = False
            continue
        one = r.construct(Value(value_node, path, None))
        text = _scalar_text(one.value)
        if text is None:
            r.problem(one, one.path, f"must be a string, not {kind_of(one.value)}")
            ok = False
            continue
        if any(c < " " or c in '";\\\x7f' for c in text):
            r.problem(one, one.path, 'must not contain control characters, ", ; or \\')
            ok = False
            continue
        cookies.append((name, text))
    return tuple(cookies) if ok else None


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
    except (LookupError, ValueError):  # ValueError: a NUL in the name
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


def request_keys(r: Reader, fields: dict[str, Value]) -> dict[str, Any]:
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
        "record_headers": r.boolean,
        "cookies": lambda v: _cookies(r, v),
        "keep_cookies": r.boolean,
        "warc_decompress": r.boolean,
    }
    for key, item in fields.items():
        value = checks[key](item)
        if value is not None or key == "json":
            out[key] = value
    bodies = sorted((k for k in ("json", "data", "form") if k in fields), key=line_of(fields))
    for extra in bodies[1:]:
        r.problem(fields[extra].node, fields[extra].path, "use at most one of json, data, form")
    return out


def line_of(fields: dict[str, Value]) -> Callable[[str], tuple[int, int]]:
    """Sort key: where a field is written (line, column), to report the later of two."""

    def where(key: str) -> tuple[int, int]:
        mark = fields[key].node.start_mark
        return int(mark.line), int(mark.column)

    return where


def follow_spec(r: Reader, item: Value) -> FollowSpec | None:
    fields = r.mapping(item.node, item.path, FOLLOW_KEYS)
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("depth",):
            values[key] = r.integer(value, 0)
        elif key == "max_pages":
            values[key] = r.integer(value, 1)
        elif key in ("robots", "sitemaps", "assets"):
            values[key] = r.boolean(value)
        elif key == "assets_scope":
            assets_scope = r.text(value)
            if assets_scope is not None and assets_scope not in ("host", "any"):
                r.problem(value, value.path, "must be host or any")
            values[key] = assets_scope
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
                except (re.error, OverflowError, RecursionError) as exc:
                    # OverflowError: a repeat count like {99999999999}; RecursionError: groups
                    # nested too deeply for the regex parser.
                    reason = str(exc) or type(exc).__name__
                    r.problem(value, value.path, f"invalid regex {pattern!r}: {reason}")
            values[key] = tuple(patterns)
    return FollowSpec(**{k: v for k, v in values.items() if v is not None})
