"""Walk PyYAML's composed nodes of a job file, collecting problems that carry FILE:LINE and a
key path (C2). Knows YAML, not the job file's keys: config.py says which keys mean what."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem, one_line
from ..urls import url_problem

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# A job file needs a handful of levels; PyYAML composes (and Python builds, substitutes and
# serialises) values recursively, so deeper nesting would end in a RecursionError. Values that
# aliases expand past this many (and far beyond the file's own size) are a "billion laughs".
MAX_NESTING = 100
MAX_EXPANDED = 1_000_000
# A file or folder name on Linux, macOS and Windows file systems; a path as open(2) takes it.
_NAME_MAX_BYTES = 255
_PATH_MAX_BYTES = 4095

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class Unreadable:
    def __repr__(self) -> str:
        return "an unreadable value"


UNREADABLE = Unreadable()


class Loader(yaml.SafeLoader):
    """SafeLoader, except that a date or time stays the text it was written as: a job file
    sends it on (a query, a header, a JSON body), and JSON has no date type."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


@dataclass(slots=True)
class Value:
    """A constructed YAML value with where it came from."""

    node: yaml.Node
    path: str
    value: Any
    env_filled: bool = False
    env_missing: bool = False
    constructed: bool = False

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1


def child_path(path: str, key: object) -> str:
    """``path.key``, with line breaks and control characters in the key escaped (``\\n``), so
    a key written as a block (``? |``) still prints as one key path on one line; an empty key,
    or one with spaces around it, in double quotes (``defaults." "``), so it can be seen."""
    text = one_line(str(key))
    if not text or text != text.strip():
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{text}" if path else text


def nesting_too_deep(text: str) -> int | None:
    """The line where the YAML text nests more than MAX_NESTING collections deep, or None.
    Reads parser events, which PyYAML produces without recursing, so this is safe to run
    before composing (which recurses once per level). Raises yaml.YAMLError as compose would."""
    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                return int(mark.line) + 1 if mark is not None else 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield key_node
            yield value_node


def _measure(root: yaml.Node) -> dict[int, tuple[int, int]]:
    """(values once aliases are expanded, levels of nesting) of every node, by id; without
    recursion (aliases can nest far deeper than the text does). The graph has no cycles."""
    sizes: dict[int, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
            continue
        measured = [sizes[id(child)] for child in _children(node)]
        size = min(1 + sum(m[0] for m in measured), 1 << 62)
        sizes[id(node)] = (size, 1 + max((m[1] for m in measured), default=0))
    return sizes


def _key_id(node: yaml.Node) -> object:
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


def entries(node: yaml.MappingNode, depth: int = 0) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's (key, value) nodes with YAML merge keys (``<<: *anchor``) resolved: a key
    written in the mapping itself wins over a merged one, and the first of two equal keys is
    kept (the second is reported as a duplicate by the tree check)."""
    own: list[tuple[yaml.Node, yaml.Node]] = []
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if isinstance(source, yaml.MappingNode) and depth < 50:
                merged.extend(entries(source, depth + 1))
    out: list[tuple[yaml.Node, yaml.Node]] = []
    seen: set[object] = set()
    for key_node, value_node in own + merged:
        key = _key_id(key_node)
        if key not in seen:
            seen.add(key)
            out.append((key_node, value_node))
    return out


class Reader:
    """Walks one job file's nodes and collects problems."""

    def __init__(self, file: Path, environ: dict[str, str]) -> None:
        self.file = file
        self.shown = str(file)
        self.environ = environ
        self.problems: list[Problem] = []
        self._loader = Loader("")
        self._env_missing: set[int] = set()  # ids of string nodes with an unset ${VAR}

    def problem(self, where: Value | yaml.Node, path: str, message: str) -> None:
        node = where.node if isinstance(where, Value) else where
        if (isinstance(where, Value) and where.env_missing) or id(node) in self._env_missing:
            return  # an unset ${VAR} is reported already; what it left behind says nothing new
        line = int(node.start_mark.line) + 1
        self.problems.append(Problem(self.shown, line, path, message))

    def problem_on(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.shown, line, path, message))

    # --- the whole tree --------------------------------------------------------------------

    def check_tree(self, root: yaml.Node) -> bool:
        """Report what no later check can see: duplicate keys at any depth, recursive aliases,
        tags a safe loader cannot build, and values their tag cannot read (``!!int x``).
        False when the tree cannot be built into values at all."""
        broken = [False]
        done: set[int] = set()

        def walk(node: yaml.Node, path: str, parents: tuple[int, ...]) -> None:
            if id(node) in parents:
                self.problem(node, path, "an alias refers to a value that contains it")
                broken[0] = True
                return
            if id(node) in done:
                return
            done.add(id(node))
            if node.tag not in Loader.yaml_constructors:
                self.problem(node, path, f"unsupported YAML tag {node.tag}")
                broken[0] = True
                return
            inner = (*parents, id(node))
            if isinstance(node, yaml.MappingNode):
                first: dict[object, int] = {}
                for key_node, value_node in node.value:
                    if key_node.tag == _MERGE_TAG:
                        sources = (
                            value_node.value
                            if isinstance(value_node, yaml.SequenceNode)
                            else [value_node]
                        )
                        if not all(isinstance(s, yaml.MappingNode) for s in sources):
                            self.problem(key_node, path, "<< must merge a mapping or a list")
                            broken[0] = True
                        for source in sources:
                            walk(source, path, inner)
                        continue
                    if not isinstance(key_node, yaml.ScalarNode):
                        self.problem(key_node, path, "keys must be strings or numbers")
                        broken[0] = True
                        continue
                    child = child_path(path, key_node.value)
                    if not readable(key_node, child):
                        continue
                    line = int(key_node.start_mark.line) + 1
                    ident = _key_id(key_node)
                    if ident in first:
                        self.problem(
                            key_node, child, f"duplicate key (first on line {first[ident]})"
                        )
                    else:
                        first[ident] = line
                    walk(value_node, child, inner)
            elif isinstance(node, yaml.SequenceNode):
                for index, value_node in enumerate(node.value):
                    walk(value_node, f"{path}[{index}]", inner)
            else:
                readable(node, path)

        def readable(node: yaml.Node, path: str) -> bool:
            surrogate = _SURROGATE_RE.search(str(node.value))
            if surrogate:
                code = f"\\u{ord(surrogate.group()):04x}"
                self.problem(node, path, f"holds {code}, half of a UTF-16 pair, which is not text")
                broken[0] = True
                return False
            if node.tag == _STR_TAG:
                return True
            try:
                self._loader.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.problem(node, path, f"cannot read {node.value!r} as {node.tag}: {message}")
                broken[0] = True
                return False
            return True

        walk(root, "", ())
        if broken[0]:
            return False
        return self._check_expansion(root)

    def _check_expansion(self, root: yaml.Node) -> bool:
        """Report the values that aliases make nest deeper than MAX_NESTING or expand to
        more than MAX_EXPANDED values (and ten times the file's own); False if any does."""
        sizes = _measure(root)
        max_size = max(MAX_EXPANDED, 10 * len(sizes))

        def too_big(node: yaml.Node) -> bool:
            size, depth = sizes[id(node)]
            return size > max_size or depth > MAX_NESTING

        done: set[int] = set()
        found = [False]

        def walk(node: yaml.Node, path: str) -> None:
            # Only nodes that are too big are entered, and each once: a child is smaller than
            # its parent, so this stops at the smallest values that are too big.
            done.add(id(node))
            inner: list[tuple[yaml.Node, str]] = []
            if isinstance(node, yaml.SequenceNode):
                inner = [(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
            elif isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    at = path if key_node.tag == _MERGE_TAG else child_path(path, key_node.value)
                    inner.append((value_node, at))
            big = [(child, at) for child, at in inner if too_big(child)]
            if not big:
                size, depth = sizes[id(node)]
                if depth > MAX_NESTING:
                    message = f"aliases nest this value more than {MAX_NESTING} levels deep"
                else:
                    message = f"aliases expand this value to {size} values, too many to read"
                self.problem(node, path, message)
                found[0] = True
            for child, at in big:
                if id(child) not in done:
                    walk(child, at)

        if too_big(root):
            walk(root, "")
        return not found[0]

    # --- structure -------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...]) -> dict[str, Value]:
        """The mapping's entries by key; reports unknown keys (duplicates: see check_tree)."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"must be a mapping, not {node_kind(node)}")
            return {}
        out: dict[str, Value] = {}
        for key_node, value_node in entries(node):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = child_path(path, key)
            if not isinstance(key, str):
                self.problem(key_node, path, "keys must be strings")
            elif key not in allowed:
                hint = close_match(key, allowed)
                self.problem(key_node, child, f"unknown key{hint}")
            else:
                out[key] = Value(value_node, child, None)
        return out

    def construct(self, item: Value) -> Value:
        """Build the plain Python value, substituting ${VAR} in every string (once per item);
        a variable that is not set is reported on the line and key path where it is used."""
        if item.constructed:
            return item
        before = len(self.problems)
        filled = self._check_env(item.node, item.path, set())
        try:
            raw = self._loader.construct_object(item.node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:  # check_tree catches these first
            self.problem(item, item.path, f"cannot read this value: {exc}")
            raw = UNREADABLE
        item.value = self._substitute(raw)
        item.env_filled = filled
        item.env_missing = len(self.problems) > before
        item.constructed = True
        return item

    def _check_env(self, node: yaml.Node, path: str, done: set[int]) -> bool:
        """Report every unset ${VAR} under ``node``; True when some variable was filled in."""
        if id(node) in done:
            return False
        done.add(id(node))
        filled = False
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG and "${" in node.value:
                names = [match.group(1) for match in _ENV_RE.finditer(node.value)]
                filled = any(name in self.environ for name in names)
                for name in names:
                    if name not in self.environ:
                        self.problem(node, path, f"environment variable {name} is not set")
                if any(name not in self.environ for name in names):
                    self._env_missing.add(id(node))
        elif isinstance(node, yaml.SequenceNode):
            for index, value_node in enumerate(node.value):
                filled |= self._check_env(value_node, f"{path}[{index}]", done)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in entries(node):
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                filled |= self._check_env(value_node, child_path(path, key), done)
        return filled

    def _substitute(self, raw: Any) -> Any:
        if isinstance(raw, str):
            if "${" not in raw:
                return raw
            return _ENV_RE.sub(lambda m: self.environ.get(m.group(1), ""), raw)
        if isinstance(raw, list):
            return [self._substitute(v) for v in raw]
        if isinstance(raw, dict):
            return {k: self._substitute(v) for k, v in raw.items()}
        return raw

    # --- scalars ---------------------------------------------------------------------------

    def integer(self, item: Value, minimum: int) -> int | None:
        value = self.construct(item).value
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(item, item.path, f"must be an integer, not {kind_of(value)}")
            return None
        if value < minimum:
            self.problem(item, item.path, f"must be at least {minimum}, not {value}")
            return None
        return value

    def number(self, item: Value, *, allow_off: bool) -> float | None:
        """A positive number; with allow_off, null or 0 (returned as None) turn it off."""
        value = self.construct(item).value
        if allow_off and (value is None or value == 0) and not isinstance(value, bool):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(item, item.path, f"must be a number, not {kind_of(value)}")
            return None
        if math.isnan(value) or math.isinf(value):
            self.problem(item, item.path, f"must be a finite number, not {value}")
            return None
        if value <= 0:
            off = " (0 or null turns it off)" if allow_off else ""
            self.problem(item, item.path, f"must be above 0, not {value}{off}")
            return None
        return float(value)

    def text(self, item: Value) -> str | None:
        value = self.construct(item).value
        if not isinstance(value, str):
            self.problem(item, item.path, f"must be a string, not {kind_of(value)}")
            return None
        return value

    def boolean(self, item: Value) -> bool | None:
        value = self.construct(item).value
        if not isinstance(value, bool):
            self.problem(item, item.path, f"must be true or false, not {kind_of(value)}")
            return None
        return value

    def http_url(self, item: Value, value: str, path: str) -> str | None:
        problem = url_problem(value)
        if problem:
            self.problem(item, path, problem)
            return None
        return value.strip()

    def local_path(self, item: Value, *, must_exist: bool) -> Path | None:
        """A path relative to the job file's folder (C2), not to the current directory."""
        value = self.text(item)
        if value is None:
            return None
        if not value.strip():
            self.problem(item, item.path, "must not be empty")
            return None
        path = self.resolve_path(item, value)
        if path is None:
            return None
        try:
            if must_exist and not path.is_file():
                what = "not a file" if path.exists() else "file not found"
                self.problem(item, item.path, f"{what}: {path}")
                return None
        except OSError as exc:  # a name too long, a loop of symlinks, a folder not readable
            self.problem(item, item.path, f"cannot use {path}: {exc.strerror or exc}")
            return None
        return path

    def resolve_path(self, item: Value, value: str) -> Path | None:
        """``value`` as a path against the job file's folder; None (a problem reported) when
        no file system takes it: a NUL, a name over 255 bytes, an unknown ``~user``."""
        problem = path_problem(value)
        if problem is None:
            try:
                return self.resolve(value)
            except RuntimeError as exc:  # Path.expanduser: "Could not determine home directory"
                problem = f"cannot expand {value.split('/', 1)[0]!r}: {exc}"
        self.problem(item, item.path, problem)
        return None

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.file.parent / path


def path_problem(value: str) -> str | None:
    """Why no file system would take ``value`` as a path, or None."""
    if "\0" in value:
        return "a path must not contain a NUL character"
    try:
        encoded = os.fsencode(value)
    except UnicodeError:
        return "a path must be text the file system can encode"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > _NAME_MAX_BYTES:
        return f"a file or folder name is {len(longest)} bytes long, more than {_NAME_MAX_BYTES}"
    if len(encoded) > _PATH_MAX_BYTES:
        return f"the path is {len(encoded)} bytes long, more than {_PATH_MAX_BYTES}"
    return None


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    kinds: dict[type, str] = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        bytes: "binary data",
        list: "a list",
        dict: "a mapping",
        set: "a set",
        Unreadable: "an unreadable value",
    }
    return kinds.get(type(value), type(value).__name__)


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "null"
    return "a scalar"


def close_match(key: str, allowed: tuple[str, ...]) -> str:
    import difflib

    match = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
