"""File names from any URL and any template (issue 12, C6): a relative path inside the job
folder that the file system accepts (created for real), at most 200 characters a component,
and unique within a run (choose_name with a claim backed by a set, as the run's state)."""

from __future__ import annotations

import os
import string
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from crawler.config.spec import JobSpec, UrlSource
from crawler.tasks.expand import make_task
from crawler.tasks.naming import (
    MAX_NAME,
    choose_name,
    clean_component,
    default_name,
    extension,
    is_windows_reserved,
    render_template,
)
from crawler.urls import parse_http_url

from .conftest import examples

ODD = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.sampled_from(
        [
            "..",
            ".",
            "../../etc/passwd",
            "/abs/olute",
            "\\\\server\\share",
            "C:\\Windows",
            "CON",
            "con.txt",
            "nul .x",
            "COM¹",
            "LPT9.log",
            'a:b*c?d<e>f|g"h',
            "\x00\x01\x1f\x7f",
            "\u202e\u200b\ufeff",
            "e\u0301",
            " . ",
            "...",
            "a/./b/../c",
            "%2e%2e%2f",
        ]
    ),
    st.integers(150, 3000).map(lambda n: "n" * n),
    st.integers(60, 500).map(lambda n: "é" * n),
    st.integers(60, 300).map(lambda n: "\U0001f600" * n),
)
HOSTS = st.sampled_from(
    ["127.0.0.1", "example.org", "xn--bcher-kva.de", "bücher.de", "[::1]", "a" * 63 + ".com"]
)


@st.composite
def urls(draw: st.DrawFn) -> URL:
    """A URL as a run would hold it: parsed from text, or built with odd parts."""
    if draw(st.booleans()):
        text = f"http://{draw(HOSTS)}/{draw(ODD)}?{draw(ODD)}"
        url = parse_http_url(text)
        assume(not isinstance(url, str))
        assert isinstance(url, URL)
        return url
    host = draw(HOSTS).strip("[]")
    try:
        return URL.build(scheme="http", host=host, path="/" + draw(ODD), query_string=draw(ODD))
    except (ValueError, TypeError, UnicodeError):
        assume(False)
        raise


# Controls, format characters (bidi, zero-width), surrogates, unassigned, separators but ' '.
NEVER = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp", "Zs"})
PLACEHOLDERS = ["{host}", "{path}", "{query}", "{hash}", "{index}", "{ext}"]
templates = st.lists(
    st.one_of(
        st.sampled_from([*PLACEHOLDERS, "/", "\\", "..", ".", "//"]),
        ODD.map(lambda t: t.replace("{", "{{").replace("}", "}}")),
    ),
    min_size=1,
    max_size=8,
).map("".join)
keys = st.text("0123456789abcdef", min_size=32, max_size=32)
content_types = st.one_of(
    st.sampled_from(
        ["text/html", "application/json", "image/png", "", "x/y; charset=a", "text/xml"]
    ),
    st.text(max_size=30),
)
exts = st.builds(extension, st.sampled_from(["text", "bytes", "json"]), content_types)


def check_path(root: Path, name: str) -> Path:
    """``name`` is relative, stays inside ``root``, has safe components, and can be created."""
    assert name and not name.startswith("/") and "\\" not in name, repr(name)
    parts = name.split("/")
    for part in parts:
        assert part not in ("", ".", ".."), repr(name)
        assert len(part) <= MAX_NAME, (len(part), name)
        assert len(part.encode()) <= 255, name
        assert not any(c != " " and unicodedata.category(c) in NEVER for c in part), repr(part)
        assert part == part.strip() and not part.endswith("."), repr(part)
        assert not any(c in part for c in '<>:"|?*\x00'), repr(part)
        assert not is_windows_reserved(part), repr(part)
    target = root / name
    assert target.resolve().is_relative_to(root.resolve())
    return target


def create(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)


@given(part=ODD)
@example(part="a" * 199 + "é")
@example(part="é" * 150 + ".tar.gz")
def test_clean_component(part: str) -> None:
    cleaned = clean_component(part)
    if cleaned:
        with tempfile.TemporaryDirectory() as tmp:
            create(check_path(Path(tmp), cleaned))


@given(url=urls(), key=keys, ext=exts)
def test_default_name(url: URL, key: str, ext: str) -> None:
    name = default_name(url, key, ext)
    assert "/" not in name
    assert set(name) <= set(string.ascii_letters + string.digits + "._-"), name
    with tempfile.TemporaryDirectory() as tmp:
        create(check_path(Path(tmp), name))


@given(template=templates, url=urls(), key=keys, index=st.integers(0, 10**12), ext=exts)
@example(template="{path}", url=URL("http://h/" + "x" * 5000), key="0" * 32, index=0, ext=".html")
@example(template="{query}/" * 40, url=URL("http://h/?q=1"), key="0" * 32, index=0, ext="")
@example(template="../{host}/..", url=URL("http://h/"), key="0" * 32, index=0, ext=".bin")
def test_render_template(template: str, url: URL, key: str, index: int, ext: str) -> None:
    name = render_template(template, url, key, index, ext)
    if name:  # '' makes the run use the default name
        with tempfile.TemporaryDirectory() as tmp:
            create(check_path(Path(tmp), name))


def job(template: str | None) -> JobSpec:
    return JobSpec(name="j", line=1, source=UrlSource(urls=("http://h/",)), filename=template)


class Claims:
    """The run's name claims (RunState.claim_name) as a dict: a name, ignoring case, belongs
    to the first request that claims it."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    def claim(self, job: str, name: str, key: str) -> bool:
        return self.owners.setdefault((job, name.lower()), key) == key


@settings(max_examples=examples(0.5, at_least=10))
@given(
    template=st.one_of(st.none(), templates),
    texts=st.lists(
        st.one_of(
            urls().map(str),
            st.sampled_from(["http://h/a", "http://h/A", "http://h/a/b", "http://h/a?b"]),
        ),
        min_size=1,
        max_size=25,
    ),
    ext=exts,
)
@example(template="{path}", texts=["http://h/a", "http://h/A", "http://h/a/b"], ext=".txt")
@example(template="x", texts=["http://h/1", "http://h/2", "http://h/3"], ext="")
def test_names_are_unique_within_a_run(template: str | None, texts: list[str], ext: str) -> None:
    spec = job(template)
    claims = Claims()
    names: dict[str, str] = {}  # request key -> name
    for index, text in enumerate(texts):
        task = make_task(spec, index, text, from_file=True)
        if task.invalid is not None or task.key in names:
            continue  # a request listed twice is fetched once (C17)
        names[task.key] = choose_name(task, ext, claims.claim)
    folded = [name.lower() for name in names.values()]
    assert len(set(folded)) == len(folded), names
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for key, name in names.items():
            try:
                create(check_path(root, name))
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                # One request's file is another's folder: the run saves it under the
                # default name (ResultWriter.write), which must then be free.
                task = next(t for t in [make_task(spec, 0, x, True) for x in texts] if t.key == key)
                create(check_path(root, default_name(task.url, key, ext)))


def test_a_template_name_never_takes_another_requests_default_name() -> None:
    spec = job("{query}")
    claims = Claims()
    first = make_task(spec, 0, "http://h/")  # {query} is empty: the default name
    first_name = choose_name(first, ".txt", claims.claim)
    second = make_task(spec, 1, f"http://h/?{first_name}")  # {query} is that default name
    second_name = choose_name(second, ".txt", claims.claim)
    assert first.key != second.key
    assert first_name.lower() != second_name.lower(), first_name


def test_a_reserved_name_cut_to_200_characters_stays_within_200() -> None:
    cleaned = clean_component("con.txt" + "n" * 194)
    assert len(cleaned) <= MAX_NAME, len(cleaned)
