"""Choose the codec that decodes a text body (C5 order): the job's encoding, a BOM, the
Content-Type charset, an HTML <meta charset>, cchardet detection, then UTF-8. Pure functions."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any

import cchardet

# cchardet scans everything it is given (about 25 ms per 100 KB, twice that for binary noise),
# so it sees a prefix only.
DETECT_PREFIX = 64 * 1024
# The second look, when the prefix misled it: bounded too.
DETECT_SECOND = 1024 * 1024
# Where browsers look for <meta charset>: the first 1024 bytes (HTML Standard, "prescan").
META_PREFIX = 1024
# A few more, because real pages put long scripts or comments before the meta tag.
_META_SCAN = 4096

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""",
    re.IGNORECASE,
)
# The same declarations in decoded text, for relabelling a transcoded page: the value of a
# ``<meta charset=X>`` or of the ``charset=X`` inside ``<meta http-equiv=... content=...>``.
_META_TEXT = re.compile(
    r"""<meta[\s/][^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""",
    re.IGNORECASE,
)
# The encoding of an XML declaration, which only counts at the very start of the document.
_XML_DECL = re.compile(
    r"""\ufeff?<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9_.:-]*)["']""",
    re.IGNORECASE,
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# Python text codecs that are not character sets a web page can be written in: a server or
# page naming one is wrong, and decoding with it would garble or fail (``undefined`` raises
# a bare UnicodeError). Treated as unknown, so the next source in the order decides.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"}
)


def lookup(name: str | None) -> str | None:
    """The canonical name of a character set, or None when Python has no such text codec
    (``base64``, ``zlib`` and the like are codecs, but not for text)."""
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return None
    return info.name


def bom_codec(body: bytes) -> str | None:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    return None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = _CT_CHARSET.search(content_type)
    return lookup(match.group(1)) if match else None


def meta_charset(body: bytes) -> str | None:
    match = _META.search(body, 0, _META_SCAN)
    if not match:
        return None
    codec = lookup(match.group(1).decode("ascii"))
    # A meta tag readable as ASCII means an ASCII-compatible document, so a UTF-16/32 label
    # is wrong; the HTML Standard reads such a page as UTF-8.
    if codec is not None and codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return codec


def declare_utf8(text: str, content_type: str | None) -> str:
    """``text`` (a decoded HTML or XML body about to be written as UTF-8) with the charset it
    declares about itself rewritten to UTF-8, so a browser or XML parser reading the saved file
    does not decode it with the original, now wrong, codec. Only the head is looked at: HTML
    ``<meta charset>`` and ``<meta http-equiv=Content-Type content=...charset=...>`` (any case)
    in the first _META_SCAN characters, which hold at least the 1024 bytes a browser prescans
    and all that meta_charset looked at; an XML declaration at the very start. Every other
    character is kept; a declaration that already says UTF-8 is left as written; a body of
    another type (plain text, CSV, JSON) is returned as it is."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    is_html = mime in _HTML_TYPES
    if not is_html and not mime.endswith("xml"):
        return text
    head = text[:_META_SCAN]
    new_head = head
    xml = _XML_DECL.match(new_head)
    if xml is not None and lookup(xml.group(1)) != "utf-8":
        new_head = f"{new_head[: xml.start(1)]}UTF-8{new_head[xml.end(1) :]}"
    if is_html:
        new_head = _META_TEXT.sub(_meta_utf8, new_head)
    if new_head == head:
        return text
    return new_head + text[len(head) :]


def _meta_utf8(match: re.Match[str]) -> str:
    if lookup(match.group(1)) == "utf-8":
        return match.group(0)
    start = match.start(1) - match.start(0)
    end = match.end(1) - match.start(0)
    whole = match.group(0)
    return f"{whole[:start]}utf-8{whole[end:]}"


def detect(body: bytes) -> str | None:
    """cchardet's guess on a bounded prefix; None when it has no confident answer."""
    if not body:
        return None
    sample = body[:DETECT_PREFIX]
    codec = _guess(sample)
    if codec == "ascii" and len(body) > DETECT_PREFIX:
        # Pages often open with long inline scripts or styles; a prefix of those says only
        # "ASCII". Look again from the first byte that is not ASCII.
        first = _NON_ASCII.search(body, DETECT_PREFIX)
        if first is not None:
            start = max(0, first.start() - META_PREFIX)
            codec = _guess(body[start : start + DETECT_PREFIX])
    # Pure ASCII is valid UTF-8; call it that, as the default would.
    if codec == "ascii":
        return "utf-8"
    return codec


def _guess(sample: bytes) -> str | None:
    return lookup(cchardet.detect(sample).get("encoding"))


def fallback_charset(_response: Any, body: bytes) -> str:
    """aiohttp's ``fallback_charset_resolver``: used when a response names no charset."""
    return meta_charset(body) or detect(body) or "utf-8"


def decode(body: bytes, content_type: str | None, forced: str | None) -> tuple[str, str]:
    """Decode ``body``; returns (text, codec used). Raises UnicodeError (a ValueError) when
    the forced codec does not fit, or when nothing does; LookupError for an unknown forced
    codec."""
    if forced:
        if forced == "utf-8" and body.startswith(codecs.BOM_UTF8):
            return body[len(codecs.BOM_UTF8) :].decode(forced), forced  # no BOM in the file
        return body.decode(forced), forced
    tried: list[str] = []
    declared = bom_codec(body) or header_charset(content_type) or meta_charset(body)
    if declared:
        try:
            return body.decode(declared), declared
        except UnicodeError:
            tried.append(declared)  # a wrong label is common; detection gets a second chance
    for codec in _candidates(body):
        if codec is None or codec in tried:
            continue
        try:
            return body.decode(codec), codec
        except UnicodeError:
            tried.append(codec)
    raise UnicodeDecodeError(
        tried[0] if tried else "utf-8",
        body,
        0,
        len(body),
        f"no codec decodes the body (tried {', '.join(tried)})",
    )


def _candidates(body: bytes) -> Iterator[str | None]:
    """Detection on the prefix; then, when that codec does not fit (the prefix misled it),
    detection on a larger part of the body; then UTF-8."""
    yield detect(body)
    if len(body) > DETECT_PREFIX:
        guess = _guess(body[:DETECT_SECOND])
        yield "utf-8" if guess == "ascii" else guess
    yield "utf-8"
