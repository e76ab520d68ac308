"""Page requisites (C16), as ``wget --page-requisites`` has them: what a page needs to display.
The URLs an HTML page or a stylesheet refers to (pure functions) and which of them are in the
job's assets_scope; crawl.py queues them.

From HTML: ``img`` ``src`` and ``srcset``, ``picture``/``video``/``audio`` ``source`` ``src``
and ``srcset``, ``video`` ``poster``, ``track`` ``src``, ``script`` ``src``, ``link`` with rel
``stylesheet``, ``icon`` (``shortcut icon``, ``apple-touch-icon``, ``mask-icon``) or
``manifest``, ``input type=image``, ``embed`` ``src``, ``object`` ``data``, and the
``url()``/``@import`` of ``<style>`` blocks and ``style`` attributes. From CSS: ``@import``
and ``url()``. ``data:`` URLs and fragments-only references are not fetched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from .links import SCHEMES, canonical, parse_url

if TYPE_CHECKING:
    from ..http.fetch import Attempt

# (tag, attribute) pairs whose value is one URL.
_SINGLE = (
    ("img", "src"),
    ("source", "src"),
    ("video", "poster"),
    ("video", "src"),
    ("audio", "src"),
    ("track", "src"),
    ("script", "src"),
    ("input", "src"),
    ("embed", "src"),
    ("object", "data"),
)
_SRCSET = (("img", "srcset"), ("source", "srcset"))
_LINK_RELS = frozenset({"stylesheet", "icon", "apple-touch-icon", "mask-icon", "manifest"})
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# The most of one page or stylesheet read for its requisites.
MAX_PARSE_BYTES = 8 * 1024 * 1024
# Bodies up to this size are parsed on the event loop; larger ones on the parse thread.
_INLINE_BYTES = 32 * 1024

CSS_TYPES = frozenset({"text/css"})


def is_css(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() in CSS_TYPES


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset``: comma-separated candidates, each a URL and a descriptor."""
    found = []
    for candidate in value.split(","):
        parts = candidate.strip().split()
        if parts:
            found.append(parts[0])
    return found


def css_urls(text: str) -> list[str]:
    """``@import`` and ``url()`` references of a stylesheet, as written."""
    text = _CSS_COMMENT.sub("", text)
    found = [next(g for g in m.groups() if g is not None) for m in _CSS_IMPORT.finditer(text)]
    found += [next(g for g in m.groups() if g is not None) for m in _CSS_URL.finditer(text)]
    return found


def raw_requisites(body: bytes) -> tuple[str | None, list[str]]:
    """(the ``<base href>``, each requisite reference of an HTML page as written)."""
    tree = LexborHTMLParser(body)
    base = next((node.attrs.get("href") for node in tree.tags("base")), None)
    found: list[str] = []
    for tag, attr in _SINGLE:
        for node in tree.tags(tag):
            if tag == "input" and (node.attrs.get("type") or "").lower() != "image":
                continue
            value = node.attrs.get(attr)
            if value:
                found.append(value)
    for tag, attr in _SRCSET:
        for node in tree.tags(tag):
            value = node.attrs.get(attr)
            if value:
                found += srcset_urls(value)
    for node in tree.tags("link"):
        rels = set((node.attrs.get("rel") or "").lower().split())
        value = node.attrs.get("href")
        if value and rels & _LINK_RELS:
            found.append(value)
    for node in tree.tags("style"):
        found += css_urls(node.text(deep=True) or "")
    for node in tree.css("[style]"):
        found += css_urls(node.attrs.get("style") or "")
    return base, found


def resolve(base_url: str, base_href: str | None, references: Iterable[str]) -> list[str]:
    """Canonical http(s) URLs of ``references`` resolved against the page (and its
    ``<base href>``), each once, in order; data:, fragment-only and unparsable ones dropped."""
    try:
        base = URL(base_url)
        if base_href:
            parsed = parse_url(base_href)
            joined = base.join(parsed) if parsed is not None else base
            if joined.scheme in SCHEMES and joined.raw_host:
                base = joined
    except (ValueError, TypeError, IndexError):
        return []
    seen: set[str] = set()
    found: list[str] = []
    for reference in references:
        if not reference or reference.startswith("#") or reference[:5].lower() == "data:":
            continue
        parsed = parse_url(reference)
        if parsed is None:
            continue
        try:
            text = canonical(base.join(parsed))
        except (ValueError, TypeError, IndexError):
            continue
        if text is not None and text not in seen:
            seen.add(text)
            found.append(text)
    return found


def page_requisites(body: bytes, page_url: str) -> list[str]:
    """The canonical URLs of what an HTML page needs to display."""
    base_href, references = raw_requisites(body)
    return resolve(page_url, base_href, references)


def stylesheet_requisites(body: bytes, css_url: str) -> list[str]:
    """The canonical URLs a stylesheet imports or refers to with url()."""
    text = body[:MAX_PARSE_BYTES].decode("utf-8", "replace")
    return resolve(css_url, None, css_urls(text))


async def requisites(
    attempt: Attempt,
    page: str,
    extract: Callable[[bytes, str], list[str]],
    assets_scope: str,
    parser: Executor,
) -> list[str]:
    """The requisites ``extract`` finds in a fetched page or stylesheet (at most its first
    MAX_PARSE_BYTES, read back from disk when it was spilled), in the scope asked for; a
    large body is parsed on the crawl's parse thread, not the event loop."""
    if attempt.spill is not None:
        body = await asyncio.to_thread(_head_of, attempt.spill, MAX_PARSE_BYTES)
    else:
        body = attempt.body[:MAX_PARSE_BYTES]
    if len(body) > _INLINE_BYTES:
        found = await asyncio.get_running_loop().run_in_executor(parser, extract, body, page)
    else:
        found = extract(body, page)
    host = URL(page).raw_host or ""
    return [url for url in found if allowed(url, host, assets_scope)]


def _head_of(path: Path, limit: int) -> bytes:
    with path.open("rb") as body:
        return body.read(limit)


def allowed(url: str, page_host: str, assets_scope: str) -> bool:
    """Whether a requisite is fetched: on the page's host (``host``), or anywhere (``any``)."""
    if assets_scope == "any":
        return True
    try:
        host = (URL(url).raw_host or "").lower()
    except (ValueError, TypeError, IndexError):
        return False
    return host == page_host.lower()
