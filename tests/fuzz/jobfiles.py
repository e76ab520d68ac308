"""Hypothesis strategies for job files: values drawn from the job-file schema (README's job file
reference, crawler/config/requestkeys.py), each one possibly swapped for a hostile value,
rendered as YAML by a small emitter that can use every YAML form a hand-written file might
(quoted and plain scalars, block and flow collections, block keys, anchors, aliases and merge
keys), then mutated as text and as bytes."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from crawler.config.spec import METHODS, SAVE_MODES, TIMEOUT_FIELDS
from crawler.tasks.naming import is_windows_reserved

URL = "http://127.0.0.1:9"  # never fetched: validate and --dry-run only

# Strings a careless user (or a broken generator) puts in a job file.
ODD_STRINGS = [
    "",
    " ",
    "\0",
    "a\0b",
    "\n",
    "a\nb",
    "\r\n",
    "\t",
    "\x1b[31mred",
    "\x7f",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\ud800",
    "\udfff",
    "~",
    "~nosuchuser-crawler-fuzz/x",
    "${HOME}",
    "${CRAWLER_FUZZ_UNSET}",
    "${",
    "$",
    "..",
    "../" * 50,
    "/",
    "/dev/null",
    "/proc/self/mem",
    "CON",
    "nul.txt",
    "{",
    "}",
    "{}",
    "{0}",
    "{host",
    "{nope}",
    "{host!r}",
    "{path:>10}",
    "%s%n%x",
    "*",
    "&a",
    "!!int",
    "- x",
    ": x",
    "# x",
    "[",
    "http://",
    "http://[::1",
    "ftp://x/",
    "http://a b/",
    "http://[1:2]/",
    "http://xn--/",
    "http://a:99999/",
    f"{URL}/\0",
    "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
    "a{99999999999}",
    "(?P<",
    "gb2312",
    "rot13",
    "utf-8\0",
    "undefined",
]

ODD_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2**31,
    2**63,
    2**64 + 1,
    10**100,
    -(10**100),
    0.0,
    -0.0,
    1e-300,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
    None,
]


# Strategies are built once: building (and validating) them per draw is most of the cost.
ODD_TEXT = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    # Long strings are built, not listed: Hypothesis prints the lists in its statistics.
    st.integers(250, 6000).map(lambda n: "y" * n),
    st.sampled_from(["é", "\U0001f600", "x/"]).map(lambda c: c * 300),
)
# Anything: wrong types, odd strings and numbers, nested collections.
ODD_VALUE = st.recursive(
    st.one_of(st.sampled_from(ODD_NUMBERS), st.integers(), st.floats(), ODD_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(ODD_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)


VALID, NEAR, HOSTILE = "valid", "near", "hostile"


names = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_-]{0,11}\Z").filter(
    lambda n: not is_windows_reserved(n)
)
tokens = st.from_regex(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}\Z")
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
cookie_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters='";\\\x7f'),
    max_size=12,
)
scalar_values = st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.floats())
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
numbers = st.one_of(st.integers(0, 600), st.floats(0, 600), st.none())
_URL_CHARS = st.characters(
    codec="utf-8",
    min_codepoint=33,
    exclude_characters="\\",
    exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
)
urls = st.builds(
    lambda path, query: f"{URL}/{path}" + (f"?{query}" if query else ""),
    st.text(_URL_CHARS, max_size=10),
    st.text(_URL_CHARS, max_size=6),
)
templates = (
    st.lists(
        st.sampled_from(
            ["{host}", "{path}", "{query}", "{hash}", "{index}", "{ext}", "/", "..", "a"]
        ),
        min_size=1,
        max_size=6,
    )
    .map("".join)
    .filter(lambda t: bool(t.strip("/ ")))
)


def _unique_by_case(keys: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> Any:
    return st.lists(st.tuples(keys, values), max_size=3, unique_by=lambda kv: kv[0].lower()).map(
        dict
    )


# Each key: (valid values, near misses: what README's rules reject).
REQUEST_VALUES: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "method": (
        st.sampled_from(METHODS + tuple(m.lower() for m in METHODS)),
        st.sampled_from(["FETCH", "", "GET POST", 1]),
    ),
    "params": (
        st.dictionaries(
            st.text(max_size=6), st.one_of(scalar_values, st.lists(scalar_values, max_size=3))
        ),
        st.sampled_from([[1, 2], {"a": {"b": 1}}, {"a": [[1]]}, "a=b"]),
    ),
    "headers": (
        _unique_by_case(tokens, header_values),
        st.sampled_from([{"A B": "x"}, {"X": "a\nb"}, {"X": [1]}, ["X: y"], {"a": 1, "A": 2}]),
    ),
    "json": (json_values, st.sampled_from([math.nan, [math.inf], {"x": -math.inf}])),
    "data": (st.text(max_size=20), st.sampled_from([1, [1], {"a": 1}, None])),
    "form": (
        st.dictionaries(st.text(max_size=6), scalar_values, max_size=3),
        st.sampled_from(["a=b", [1], {"a": {"b": 1}}]),
    ),
    "timeout": (
        st.one_of(numbers, st.dictionaries(st.sampled_from(TIMEOUT_FIELDS), numbers, max_size=4)),
        st.sampled_from([-1, "30s", {"totl": 5}, {"total": -1}, {"total": math.nan}, [1]]),
    ),
    "save": (st.sampled_from(SAVE_MODES), st.sampled_from(["xml", "TEXT", "", 1])),
    "encoding": (
        st.sampled_from(["utf-8", "gb2312", "latin-1", "ascii", "cp1252", "shift_jis"]),
        st.sampled_from(["rot13", "nope", "base64", "", "utf-8\0"]),
    ),
    "retries": (st.integers(0, 10), st.sampled_from([-1, 1.5, "3", None])),
    "max_bytes": (st.integers(1, 1 << 40), st.sampled_from([0, -1, "1 MiB", 1.0])),
    "max_redirects": (st.integers(0, 30), st.sampled_from([-1, "ten", True])),
    "conditional": (st.booleans(), st.sampled_from(["yes please", 1, None])),
    "proxy": (
        st.sampled_from(["http://127.0.0.1:9", "https://proxy.example:3128"]),
        st.sampled_from(["socks5://x", "http://", "ftp://a/", 8080]),
    ),
    "verify": (
        st.sampled_from([True, False, "ca.pem"]),
        st.sampled_from(["missing.pem", ".", "", 0, "x" * 300, "~nosuchuser-fuzz/ca.pem"]),
    ),
    "filename": (
        templates,
        st.sampled_from(["{nope}", "{", "}", "{host!r}", "{path:>9}", "///", " ", "{0}", 5]),
    ),
    "record_headers": (st.booleans(), st.just("no")),
    "cookies": (
        _unique_by_case(tokens, cookie_values),
        st.sampled_from([{"a b": "x"}, {"a": 'x"y'}, {"a": "x;y"}, ["a=b"]]),
    ),
    "keep_cookies": (st.booleans(), st.just("true")),
    "warc_decompress": (st.booleans(), st.just(2)),
}
FOLLOW_VALUES: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "depth": (st.integers(0, 5), st.sampled_from([-1, "2", 1.5])),
    "scope": (st.sampled_from(["host", "domain", "prefix"]), st.just("planet")),
    "include": (
        st.lists(st.sampled_from(["/docs/", "\\.html$", "^http"]), max_size=2),
        st.sampled_from([["("], ["a{99999999999}"], ["(" * 400 + ")" * 400], [1]]),
    ),
    "exclude": (st.lists(st.sampled_from(["\\.pdf$", "x"]), max_size=2), st.just(["["])),
    "max_pages": (st.integers(1, 100), st.sampled_from([0, -5])),
    "robots": (st.booleans(), st.just("always")),
    "sitemaps": (st.booleans(), st.just([])),
}
TOP_VALUES: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "output": (
        st.sampled_from(["out", "out/sub", "./o", "${HOME}/../tmp/x"]),
        st.sampled_from(["", " ", "a\0b", "x" * 300, "~nosuchuser-fuzz/o", "${NOPE_UNSET}"]),
    ),
    "concurrency": (st.integers(1, 64), st.sampled_from([0, -1, 1.5, "8"])),
    "per_host": (st.integers(1, 16), st.sampled_from([0, None])),
    "rate_per_host": (
        st.floats(0.01, 100),
        st.sampled_from([0, -1, math.nan, math.inf, "5/s"]),
    ),
    "host_down_after": (st.integers(0, 50), st.sampled_from([-1, "never"])),
}
BODY_KEYS = ("json", "data", "form")
UNKNOWN_KEYS = st.one_of(ODD_TEXT, st.sampled_from(["retry", "timout", "urls_files", "follow"]))


class Tree:
    """The strategies of one mode: valid values only; near misses now and then (what the
    rules reject, one key at a time); or hostile (odd values of any type anywhere)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.request = self.keys(REQUEST_VALUES)
        self.follow = self.keys(FOLLOW_VALUES, max_keys=7)
        self.top = self.keys(TOP_VALUES, max_keys=5)
        self.name = self.maybe(names, st.sampled_from(["", "a b", "CON", "..", "x" * 201, 7]))
        self.url = self.maybe(urls, st.sampled_from(["ftp://a/", "http://", "http://[::1", 5]))
        self.urls = self.maybe(
            st.lists(urls, min_size=1, max_size=3), st.sampled_from([[], "http://a/", [1]])
        )
        self.urls_file = self.maybe(
            st.just("urls.txt"), st.sampled_from(["missing.txt", ".", "", "a\0b", "x" * 5000])
        )
        self.version = self.maybe(st.just(1), st.sampled_from([2, "1", 1.0, None, True]))

    def maybe(self, valid: st.SearchStrategy[Any], near: st.SearchStrategy[Any]) -> Any:
        if self.mode == VALID:
            return valid
        if self.mode == NEAR:
            return st.one_of(*[valid] * 7, near)
        return st.one_of(*[valid] * 4, near, ODD_VALUE)

    def keys(
        self,
        table: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]],
        max_keys: int = 4,
    ) -> st.SearchStrategy[dict[Any, Any]]:
        """Some of the table's keys; outside the valid mode now and then an unknown key."""
        maybe = {key: self.maybe(valid, near) for key, (valid, near) in table.items()}
        chosen = st.lists(st.sampled_from(sorted(table)), unique=True, max_size=max_keys)
        mode = self.mode

        @st.composite
        def draw_keys(draw: st.DrawFn) -> dict[Any, Any]:
            keys = draw(chosen)
            if mode == VALID:  # at most one body
                bodies = [k for k in keys if k in BODY_KEYS]
                keys = [k for k in keys if k not in bodies[1:]]
            out: dict[Any, Any] = {key: draw(maybe[key]) for key in keys}
            if mode != VALID and draw(st.integers(0, 5)) == 0:
                out[draw(UNKNOWN_KEYS)] = draw(ODD_VALUE)
            return out

        return draw_keys()

    def job(self) -> st.SearchStrategy[Any]:
        mode = self.mode

        @st.composite
        def draw_job(draw: st.DrawFn, name: st.SearchStrategy[Any]) -> Any:
            if mode == HOSTILE and draw(st.integers(0, 12)) == 0:
                return draw(ODD_VALUE)  # a job that is not even a mapping
            job: dict[Any, Any] = {"name": draw(name)}
            sources = ["url", "urls", "urls_file"]
            if mode != VALID:
                sources += ["none", "two"]
            source = draw(st.sampled_from(sources))
            if source in ("url", "two"):
                job["url"] = draw(self.url)
            if source in ("urls", "two"):
                job["urls"] = draw(self.urls)
            if source == "urls_file":
                job["urls_file"] = draw(self.urls_file)
            job.update(draw(self.request))
            if draw(st.integers(0, 4)) == 0:
                job["follow"] = draw(self.follow)
            if mode != VALID and draw(st.integers(0, 15)) == 0:
                del job["name"]
            return job

        return (
            st.lists(names, min_size=1, max_size=3, unique_by=str.lower)
            .flatmap(
                lambda ns: st.tuples(*[draw_job(self.maybe(st.just(n), self.name)) for n in ns])
            )
            .map(list)
        )

    def job_file(self) -> st.SearchStrategy[dict[Any, Any]]:
        jobs = self.maybe(self.job(), st.sampled_from([[], {}, "a", None]))
        mode = self.mode

        @st.composite
        def draw_file(draw: st.DrawFn) -> dict[Any, Any]:
            top: dict[Any, Any] = {}
            if mode != VALID and draw(st.integers(0, 9)) == 0:
                pass  # no version
            else:
                top["version"] = draw(self.version)
            top.update(draw(self.top))
            if draw(st.integers(0, 2)) == 0:
                top["defaults"] = draw(self.request)
            if mode == VALID or draw(st.integers(0, 15)):
                top["jobs"] = draw(jobs)
            return top

        return draw_file()


# --- a YAML emitter with choices ----------------------------------------------------------

_PLAIN_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+")


def _double_quoted(text: str) -> str:
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\0":
            out.append("\\0")
        elif " " <= c <= "~" or (c > "\x9f" and c.isprintable()):
            out.append(c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:  # YAML 1.1 reads 1e-05 as a string: 1.0e-05
        text = text.replace("e", ".0e")
    return text


def _scalar(value: Any, draw: st.DrawFn, safe: bool = False) -> str:
    """A scalar as YAML; ``safe``: always read back as the same value and type."""
    if value is None:
        return "null" if safe else draw(st.sampled_from(["null", "~", ""]))
    if isinstance(value, bool):
        if safe:
            return "true" if value else "false"
        return draw(st.sampled_from(["true", "yes", "True"] if value else ["false", "no"]))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if safe:
        return _double_quoted(text)
    if text and set(text) <= _PLAIN_OK and draw(st.booleans()):
        return text  # plain: may read as a number, a bool or null (that is YAML)
    if text and "'" not in text and text.isprintable() and draw(st.integers(0, 3)) == 0:
        return f"'{text}'"
    return _double_quoted(text)


class Emitter:
    """Renders a value as YAML, choosing among equivalent (and some odd) forms."""

    def __init__(self, draw: st.DrawFn, mode: str) -> None:
        self.draw = draw
        self.safe = mode != HOSTILE  # then no aliases, block keys or YAML 1.1 surprises
        self.anchors: list[str] = []

    def scalar(self, value: Any) -> str:
        return _scalar(value, self.draw, self.safe)

    def key(self, key: Any, indent: str) -> str:
        text = key if isinstance(key, str) else self.scalar(key)
        if not isinstance(key, str):
            return f"{indent}{text}:"
        if self.safe:
            return f"{indent}{self.scalar(text)}:"
        choice = self.draw(st.integers(0, 9))
        if choice == 0 and text.isprintable():
            # A block key: `? |` then the key's lines, then `:` on a line of its own.
            body = "\n".join(f"{indent}  {line}" for line in (text + "\nmore").split("\n"))
            return f"{indent}? |\n{body}\n{indent}:"
        return f"{indent}{self.scalar(text)}:"

    def anchor(self) -> str:
        if self.safe or self.draw(st.integers(0, 5)) != 0:
            return ""
        name = f"a{len(self.anchors)}"
        self.anchors.append(name)
        return f"&{name} "

    def alias(self) -> str | None:
        if not self.safe and self.anchors and self.draw(st.integers(0, 7)) == 0:
            return "*" + self.draw(st.sampled_from(self.anchors))
        return None

    def flow(self, value: Any) -> str:
        alias = self.alias()
        if alias:
            return alias
        if isinstance(value, dict):
            items = ", ".join(f"{self.scalar(k)}: {self.flow(v)}" for k, v in value.items())
            return "{" + items + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flow(v) for v in value) + "]"
        return self.scalar(value)

    def block(self, value: Any, indent: str = "") -> str:
        """Lines for ``value`` as the content under a key (or at the top)."""
        if isinstance(value, dict) and value:
            lines = []
            if not self.safe and self.anchors and self.draw(st.integers(0, 9)) == 0:
                lines.append(f"{indent}<<: *{self.draw(st.sampled_from(self.anchors))}")
            for key, item in value.items():
                head = self.key(key, indent)
                lines.append(self.after_key(head, item, indent))
            return "\n".join(lines)
        if isinstance(value, list) and value:
            lines = []
            for item in value:
                if isinstance(item, dict) and item and self.draw(st.booleans()):
                    inner = self.block(item, indent + "  ")
                    lines.append(f"{indent}- {inner.lstrip()}")
                else:
                    lines.append(self.after_key(f"{indent}-", item, indent))
            return "\n".join(lines)
        return indent + self.flow(value)

    def after_key(self, head: str, item: Any, indent: str) -> str:
        alias = self.alias()
        if alias:
            return f"{head} {alias}"
        anchor = self.anchor()
        if isinstance(item, dict | list) and item and self.draw(st.booleans()):
            return f"{head} {anchor}".rstrip() + "\n" + self.block(item, indent + "  ")
        if (
            isinstance(item, str)
            and "\n" in item
            and not self.safe
            and all(c == "\n" or c.isprintable() for c in item)
            and self.draw(st.booleans())
        ):
            body = "\n".join(f"{indent}  {line}" for line in item.split("\n"))
            return f"{head} {anchor}|\n{body}"
        return f"{head} {anchor}{self.flow(item)}"


# --- mutations of the text and its bytes ----------------------------------------------------

INSERTS = [
    "\0",
    "\t",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ud7ff",
    "\n",
    "  ",
    "- ",
    ": ",
    "&",
    "*",
    "!",
    "|",
    ">",
    "%",
    "@",
    "`",
    "'",
    '"',
    "{",
    "[",
    "---\n",
    "...\n",
    "? ",
]
BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 7))
        where = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == 0 and lines:
            lines.insert(where, lines[where])  # duplicate a line: duplicate keys
        elif kind == 1 and len(lines) > 1:
            del lines[where]
        elif kind == 2 and lines:
            line = lines[where]
            at = draw(st.integers(0, len(line)))
            lines[where] = line[:at] + draw(st.sampled_from(INSERTS)) + line[at:]
        elif kind == 3 and lines:
            lines[where] = "  " + lines[where]
        elif kind == 4:
            depth = draw(st.sampled_from([10, 63, 64, 65, 100, 400, 3000]))
            lines.insert(where, f"deep{where}: " + "[" * depth + "1" + "]" * depth)
        elif kind == 5:
            depth = draw(st.sampled_from([30, 70, 400]))
            nested = "\n".join(f"{'  ' * i}k{i}:" for i in range(depth)) + " 1"
            lines.insert(where, nested)
        elif kind == 6:
            lines.insert(0, BILLION_LAUGHS)
        else:
            lines.append(
                draw(st.sampled_from(["jobs: []", "version: 1", "jobs:", "---", "x: *nope"]))
            )
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BYTES)) + data[at:]
    return data


BILLION_LAUGHS = "\n".join(
    [
        'lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)),
    ]
)


TREES = {mode: Tree(mode).job_file() for mode in (VALID, NEAR, HOSTILE)}
MODES = st.sampled_from([VALID, VALID, NEAR, NEAR, HOSTILE, HOSTILE, HOSTILE])


@st.composite
def job_file_bytes(draw: st.DrawFn) -> bytes:
    """A job file: schema-shaped values, valid, with near misses or hostile, emitted as
    YAML; hostile ones also mutated as text and bytes half of the time."""
    mode = draw(MODES)
    value = draw(TREES[mode])
    emitter = Emitter(draw, mode)
    text = emitter.block(value) if draw(st.integers(0, 4)) else emitter.flow(value)
    if mode != HOSTILE or draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    return draw(mutated(text))
