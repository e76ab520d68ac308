"""Crawl mode's pure decisions (C14): the canonical form of a URL, the links of an HTML page,
and whether a link is in a job's scope. No I/O; safe to call from a worker thread."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from ..config.spec import FollowSpec

SCHEMES = frozenset({"http", "https"})
# The Content-Types parsed for links; anything else is saved but not read.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Where links are (C14): the element, its URL attribute, and for <link> the rel values taken.
_LINKS = (("a", "href"), ("area", "href"), ("link", "href"), ("iframe", "src"), ("frame", "src"))
_LINK_RELS = frozenset({"alternate", "next"})
# The same host check as config.url_problem: an RFC 3986 reg-name or IP literal.
_HOST = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=:-]+$")
# The HTML URL parser strips these around a URL and drops tabs and newlines inside it.
_STRIP = "".join(chr(c) for c in range(0x21))
_DROP = str.maketrans("", "", "\t\n\r")
# A page is parsed in pieces of about this size, each cut before a tag: lexbor's tree takes
# about ten times the HTML it holds (a 5 MB page: some 50 MB), so a piece bounds it.
PIECE_BYTES = 256 * 1024
CUT_WINDOW = 32 * 1024  # how far back from a piece's end a tag to cut before is looked for
_TAG_SECOND = frozenset(
    bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/!"
)
# Hrefs and canonical URLs remembered per page to resolve each once (see PageLinks).
SEEN_LIMIT = 50_000


def is_html(content_type: str | None) -> bool:
    """Whether a response's Content-Type says it is an HTML page worth parsing for links."""
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() in HTML_TYPES


def canonical(url: URL) -> str | None:
    """The one spelling of ``url`` that crawl mode fetches and dedupes by, or None when it is
    not an http(s) URL with a usable host.

    yarl already lower-cases the scheme and host, removes dot segments, decodes percent-encoded
    unreserved characters and upper-cases the hex of the rest (RFC 3986 6.2.2); on top of that
    the fragment goes (it is never sent), an explicit default port goes, and an empty path
    becomes ``/`` (RFC 3986 6.2.3). The query is kept as it is.
    """
    if url.scheme not in SCHEMES:
        return None
    host = url.raw_host
    if not host or not _HOST.match(host):
        return None
    if url.raw_fragment:
        url = url.with_fragment(None)
    if url.explicit_port is not None and url.is_default_port():
        url = url.with_port(None)
    if url.raw_path == "/" and not url.raw_query_string:
        url = url.with_path("/")  # yarl writes http://host without its path: add the "/"
    return str(url)


def parse_url(text: str) -> URL | None:
    """``text`` as a URL, cleaned as the HTML URL parser does; None when it does not parse."""
    try:
        return URL(text.strip(_STRIP).translate(_DROP))
    except (ValueError, TypeError, IndexError):  # yarl: IndexError on "http://[::1]@"
        return None


@dataclass(frozen=True, slots=True)
class Scope:
    """Which canonical URLs a crawl started from one job URL (its seed) may follow.

    ``host``: the seed's host. ``domain``: the seed's host without a leading ``www.``, and its
    subdomains (a simple stand-in for the registrable domain: no public-suffix list).
    ``prefix``: the seed's host and the seed's path up to its last ``/``. Ports and http versus
    https are not compared, as wget and Scrapy do not. Then ``include`` (one must match, when
    given) and ``exclude`` (none may match), searched in the canonical URL.
    """

    kind: str
    host: str
    prefix: str
    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]

    @classmethod
    def of_seed(cls, seed: URL, follow: FollowSpec) -> Scope:
        host = (seed.raw_host or "").lower()
        if follow.scope == "domain" and host.startswith("www."):
            host = host[4:]
        path = seed.raw_path or "/"
        prefix = path[: path.rfind("/") + 1] if follow.scope == "prefix" else "/"
        include, exclude = _patterns(follow.include, follow.exclude)
        return cls(follow.scope, host, prefix, include, exclude)

    def allows(self, url: URL, text: str) -> bool:
        """Whether the canonical URL ``text`` (parsed as ``url``) is in scope."""
        host = url.raw_host or ""
        if self.kind == "domain":
            if host != self.host and not host.endswith("." + self.host):
                return False
        elif host != self.host:
            return False
        if self.kind == "prefix" and not url.raw_path.startswith(self.prefix):
            return False
        if self.include and not any(p.search(text) for p in self.include):
            return False
        return not any(p.search(text) for p in self.exclude)


@lru_cache(maxsize=64)
def _patterns(
    include: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
    return tuple(map(re.compile, include)), tuple(map(re.compile, exclude))


def raw_links(body: bytes) -> tuple[str | None, list[str]]:
    """(the ``<base href>``, the URL of every link element) of an HTML document, as written:
    those of ``<a>`` first, in document order, then ``<area>``, ``<link>``, ``<iframe>`` and
    ``<frame>``. Lexbor parses as browsers do, so broken markup still yields its links.
    (``tags`` is used rather than a CSS selector, which costs more to compile than a small
    page costs to parse.)"""
    tree = LexborHTMLParser(body)
    base = next((node.attrs.get("href") for node in tree.tags("base")), None)
    found: list[str] = []
    for tag, attr in _LINKS:
        for node in tree.tags(tag):
            attrs = node.attrs
            if tag == "link":
                rels = (attrs.get("rel") or "").lower().split()
                if not _LINK_RELS.intersection(rels):
                    continue  # stylesheets, icons, preloads: not pages
            value = attrs.get(attr)
            if value:
                found.append(value)
    return base, found


def host_key(url: URL) -> str:
    """``host:port``, the pool's per-host key, spelled as expand.make_task spells it."""
    return f"{url.raw_host}:{url.port}"


def origin_of(url: URL) -> str:
    """``scheme://host:port``: whose robots.txt rules a URL."""
    return f"{url.scheme}://{host_key(url)}"


def accept(url: URL, scope: Scope) -> tuple[str, str] | None:
    """(canonical URL, origin) when ``url`` is an http(s) URL in ``scope``, else None."""
    text = canonical(url)
    if text is None or not scope.allows(url, text):
        return None
    return text, origin_of(url)


def accept_all(texts: list[str], scope: Scope) -> list[tuple[str, str]]:
    """``accept`` of each URL given as text (a sitemap's), each canonical URL once."""
    found: dict[str, str] = {}
    for text in texts:
        url = parse_url(text)
        try:
            got = accept(url, scope) if url is not None else None
        except (ValueError, TypeError, IndexError):  # yarl parses some parts lazily
            continue
        if got is not None:
            found.setdefault(*got)
    return list(found.items())


def page_links(body: bytes, page_url: str, scope: Scope) -> list[tuple[str, str]]:
    """(canonical URL, origin) of each in-scope http(s) link of an HTML page, each URL once,
    in document order (a page of more than PIECE_BYTES: piece by piece, see PageLinks).
    Links resolve against ``<base href>`` (itself resolved against the page URL, HTML 4.2.3)
    and the page URL; unparsable ones are skipped."""
    links = PageLinks(io.BytesIO(body).read, page_url, scope)
    found: list[tuple[str, str]] = []
    while (batch := links.next_batch()) is not None:
        found += batch
    return found


def pieces(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """The HTML that ``read(n)`` gives (up to n bytes a call, ``b""`` at the end), in pieces
    of at most PIECE_BYTES + CUT_WINDOW bytes, each but the last cut just before a tag (a
    ``<`` followed by a letter, ``/`` or ``!``) in its last CUT_WINDOW bytes."""
    carry = b""
    while True:
        data = read(PIECE_BYTES)
        buffer = carry + data if carry else data
        if not data:
            if buffer:
                yield buffer
            return
        cut = _tag_start_before_end(buffer)
        yield buffer[:cut]
        carry = buffer[cut:]


def _tag_start_before_end(buffer: bytes) -> int:
    """Where the last tag of ``buffer``'s last CUT_WINDOW bytes starts; its length when there
    is none (or only at its very start)."""
    low = max(len(buffer) - CUT_WINDOW, 1)
    end = len(buffer)
    while (at := buffer.rfind(b"<", low, end)) > 0:
        if buffer[at + 1 : at + 2] in _TAG_SECOND:
            return at
        end = at
    return len(buffer)


class PageLinks:
    """The in-scope links of one HTML page, one piece of it a call (``next_batch``), so that
    neither the parser's tree (about ten times the HTML it holds) nor the list of links grows
    with the page: a page of 50 MB costs what a page of PIECE_BYTES does.

    Each piece is parsed on its own, as lexbor parses a document (a piece starting mid-page
    gets an implied ``<html><body>``); only a piece cut inside a comment or a ``<script>``
    could show a link the whole page would not. The first ``<base href>`` applies from its
    piece on (it is in the ``<head>``, the first piece, on any real page). Within a page each
    link is resolved once: hrefs are compared without their fragment before they are
    resolved, and canonical URLs after; each set is emptied past SEEN_LIMIT entries (a
    repeat then reaches the frontier, which keeps one row per URL anyway)."""

    def __init__(self, read: Callable[[int], bytes], page_url: str, scope: Scope) -> None:
        self._pieces = pieces(read)
        self._page_url = page_url
        self._scope = scope
        self._base: URL | None = None
        self._base_set = False
        self._hrefs: set[str] = set()
        self._seen: set[str] = set()

    def next_batch(self) -> list[tuple[str, str]] | None:
        """The links of the next piece, in its document order (``<a>`` first, as raw_links
        gives them); None when the page is done or its URL does not parse."""
        piece = next(self._pieces, None)
        if piece is None:
            return None
        base_href, hrefs = raw_links(piece)
        base = self._resolve_base(base_href)
        if base is None:
            return None
        if len(self._hrefs) > SEEN_LIMIT:
            self._hrefs.clear()
        if len(self._seen) > SEEN_LIMIT:
            self._seen.clear()
        seen_href, seen, scope = self._hrefs, self._seen, self._scope
        found: list[tuple[str, str]] = []
        for href in hrefs:
            # The fragment is never sent: "p.html#a" and "p.html#b" are one link.
            ref = href.strip(_STRIP).translate(_DROP).partition("#")[0]
            if ref in seen_href:
                continue
            seen_href.add(ref)
            try:
                url = base.join(URL(ref))
                text = canonical(url)
            except (ValueError, TypeError, IndexError):  # yarl: IndexError on "http://[::1]@"
                continue
            if text is None or text in seen:
                continue
            seen.add(text)
            if scope.allows(url, text):
                found.append((text, origin_of(url)))
        return found

    def _resolve_base(self, base_href: str | None) -> URL | None:
        if self._base is not None and (self._base_set or not base_href):
            return self._base
        try:
            base = URL(self._page_url)
            if base_href:
                self._base_set = True
                joined = base.join(URL(base_href.strip(_STRIP).translate(_DROP)))
                if joined.scheme in SCHEMES and joined.raw_host:
                    base = joined
        except (ValueError, TypeError, IndexError):  # yarl: IndexError on "http://[::1]@"
            return None
        if self._base is not None:
            self._hrefs.clear()  # resolved against the old base
        self._base = base
        return base
