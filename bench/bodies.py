"""The bench's documents: deterministic bodies written once into a document root that both
servers serve (nginx and rawserver.py), and the expected content clients are checked against.

Layout under the root: ``b/NNNNN.bin`` (binary, about 2 KB), ``t/NNNNN.txt`` (UTF-8 text with
some non-ASCII words), ``j/NNNNN.json`` (a JSON object) and ``big-<bytes>.bin`` (one large
body, with its sha256 next to it in ``big-<bytes>.bin.sha256``), and for the crawl scenario
``site-<pages>/NNNN.html``, a documentation-like site of linked HTML pages (``Site``).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Bump when the generators below change: the root is rebuilt when its stamp differs.
VERSION = 1
SMALL_COUNT = 20_000
KINDS = {"bin": "b", "txt": "t", "json": "j"}
_WORDS = (
    "crawler", "fetch", "save", "disk", "manifest", "request", "response", "body", "header",
    "keep", "alive", "socket", "café", "naïve", "Grüße", "façade", "résumé", "Zürich",
    "déjà-vu", "smörgåsbord", "東京", "データ", "—", "«quoted»",
)  # fmt: skip


def small_size(index: int) -> int:
    """Between 1,792 and 2,303 bytes: about 2 KB, not all the same."""
    return 1792 + (index * 37) % 512


def bin_body(index: int) -> bytes:
    return random.Random(index).randbytes(small_size(index))


def txt_body(index: int) -> bytes:
    rng = random.Random(index)
    target, lines, size = small_size(index), [], 0
    while size < target:
        line = " ".join(rng.choice(_WORDS) for _ in range(10)) + "\n"
        lines.append(line)
        size += len(line.encode())
    return "".join(lines).encode()


def json_body(index: int) -> bytes:
    rng = random.Random(index)
    doc: dict[str, object] = {"id": index, "title": " ".join(rng.sample(_WORDS, 5)), "items": []}
    items: list[dict[str, object]] = doc["items"]  # type: ignore[assignment]
    while len(json.dumps(doc, ensure_ascii=False).encode()) < small_size(index):
        items.append(
            {"n": rng.randrange(10**6), "word": rng.choice(_WORDS), "ok": rng.random() < 0.5}
        )
    return json.dumps(doc, ensure_ascii=False).encode()


GENERATORS = {"bin": bin_body, "txt": txt_body, "json": json_body}


def rel_path(kind: str, index: int) -> str:
    """The URL path (without the leading slash) and file path under the root."""
    return f"{KINDS[kind]}/{index:05d}.{kind}"


def ensure_small(root: Path) -> None:
    """Write the small documents once; later runs reuse them."""
    stamp = root / f".complete-v{VERSION}-{SMALL_COUNT}"
    if stamp.exists():
        return
    # Only the small bodies' folders: the big body and the crawl site (maybe being served
    # to another bench run right now) are made and kept on their own.
    for folder in KINDS.values():
        shutil.rmtree(root / folder, ignore_errors=True)
    for kind, folder in KINDS.items():
        (root / folder).mkdir(parents=True)
        make = GENERATORS[kind]
        for index in range(SMALL_COUNT):
            (root / rel_path(kind, index)).write_bytes(make(index))
    stamp.touch()


def big_name(size: int) -> str:
    return f"big-{size}.bin"


def ensure_big(root: Path, size: int) -> str:
    """Write the large body once (1 MiB blocks, each made distinct by its number); returns its
    sha256, kept next to it."""
    path = root / big_name(size)
    digest_path = path.with_name(path.name + ".sha256")
    if path.exists() and digest_path.exists() and path.stat().st_size == size:
        return digest_path.read_text().strip()
    block = random.Random(VERSION).randbytes(1 << 20)
    digest = hashlib.sha256()
    temp = path.with_name(path.name + ".part")
    with temp.open("wb") as out:
        for number, offset in enumerate(range(0, size, len(block))):
            chunk = (number.to_bytes(8, "big") + block[8:])[: size - offset]
            out.write(chunk)
            digest.update(chunk)
    temp.rename(path)
    digest_path.write_text(digest.hexdigest() + "\n")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the crawl scenario's site ---------------------------------------------------------------

SITE_PAGES = 500
# A documentation site's few huge pages (Python's docs: the changelog, the full index): page
# number -> size. They are what drove a crawl's memory up (see README, the crawl scenario).
SITE_BIG = {1: 5_000_000, 2: 2_500_000}
SITE_CHILDREN = 8  # page n lists pages 8n+1 .. 8n+8 in its table of contents: all reachable
_SITE_VERSION = 1


@dataclass(frozen=True)
class Site:
    """A generated documentation-like site: ``pages`` pages of 20 to 200 KB, and the sizes
    of the ``big`` ones, under ``site-<pages>/`` of the document root; page 0 is the start."""

    pages: int = SITE_PAGES
    big: tuple[tuple[int, int], ...] = tuple(SITE_BIG.items())

    @property
    def folder(self) -> str:
        return f"site-{self.pages}"

    def rel(self, index: int) -> str:
        """The path (no leading slash) of page ``index``."""
        return f"{self.folder}/{index:04d}.html"

    def ensure(self, root: Path) -> int:
        """Write the pages once; returns their total size in bytes."""
        folder = root / self.folder
        sizes = "-".join(f"{n}x{size}" for n, size in self.big)
        stamp = folder / f".complete-v{_SITE_VERSION}-{sizes}"
        if not stamp.exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            big = dict(self.big)
            for index in range(self.pages):
                page = site_page(index, self.pages, self.folder, big.get(index))
                (root / self.rel(index)).write_bytes(page)
            stamp.touch()
        return sum((root / self.rel(index)).stat().st_size for index in range(self.pages))


def site_page(index: int, pages: int, folder: str, size: int | None = None) -> bytes:
    """Page ``index`` of a documentation-like site of ``pages`` pages in ``folder``: 20 to
    200 KB of HTML (paragraphs, code blocks, a navigation bar, a table of contents), or
    ``size`` bytes, with a link every ~80 bytes as reference pages have: to other pages
    (mostly with #fragments, some as ``../<folder>/``), to its own sections, to outside hosts
    and to ``mailto:``, which a crawl of the site must not follow."""
    rng = random.Random(f"site-{index}")
    target = 20_000 + rng.randrange(180_001) if size is None else size

    def page_link(n: int) -> str:
        rel = f"{n:04d}.html"
        shape = rng.randrange(4)
        if shape == 0:
            return rel
        if shape == 1:
            return f"../{folder}/{rel}"
        return f"{rel}#sec-{rng.randrange(40)}"

    def word() -> str:
        return rng.choice(_WORDS)

    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Page {index}</title>"
        f'<link rel="next" href="{min(index + 1, pages - 1):04d}.html"></head><body>\n'
        '<nav class="top">'
    ]
    parts += [f'<a href="{n:04d}.html">section {n}</a> ' for n in range(min(pages, 30))]
    parts.append("</nav>\n<div class=toc><ul>")
    first = SITE_CHILDREN * index + 1
    for n in range(first, min(first + SITE_CHILDREN, pages)):
        parts.append(f'<li><a href="{page_link(n)}">{word()} {n}</a></li>')
    parts.append("</ul></div>\n<main>")
    size = sum(len(p) for p in parts)
    section = 0
    while size < target:
        if rng.random() < 0.1:
            chunk = f'<h2 id="sec-{section}">{word()} {section}</h2>\n'
            section += 1
        elif rng.random() < 0.15:
            code = "\n".join(f"    {word()}({word()!r}, n={rng.randrange(99)})" for _ in range(8))
            chunk = f'<pre class="code">{code}</pre>\n'
        else:
            chunk = "<p>" + " ".join(_site_words(rng, page_link, word, section, pages)) + "</p>\n"
        parts.append(chunk)
        size += len(chunk)
    parts.append("</main></body></html>\n")
    return "".join(parts).encode()


def _site_words(
    rng: random.Random,
    page_link: Callable[[int], str],
    word: Callable[[], str],
    section: int,
    pages: int,
) -> list[str]:
    words = []
    for _ in range(40):
        pick = rng.random()
        if pick < 0.12:
            words.append(f'<a href="{page_link(rng.randrange(pages))}">{word()}</a>')
        elif pick < 0.135:
            words.append(f'<a href="#sec-{rng.randrange(max(section, 1))}">{word()}</a>')
        elif pick < 0.145:
            words.append(f'<a href="https://example.org/{word()}/{rng.randrange(9999)}">x</a>')
        elif pick < 0.148:
            words.append(f'<a href="mailto:docs@example.org">{word()}</a>')
        else:
            words.append(word())
    return words
