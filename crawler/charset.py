"""Choose the codec that decodes a text body (C5 order): the job's encoding, a BOM, the
Content-Type charset, an HTML <meta charset>, cchardet detection, then UTF-8. Pure functions."""

from __future__ import annotations

import codecs
import re
from typing import Any

import cchardet

# cchardet scans everything it is given (about 25 ms per 100 KB), so it sees a prefix only.
DETECT_PREFIX = 64 * 1024
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
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def lookup(name: str | None) -> str | None:
    """The canonical codec name, or None when Python has no such codec."""
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


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
    return lookup(match.group(1).decode("ascii")) if match else None


def detect(body: bytes) -> str | None:
    """cchardet's guess on a bounded prefix; None when it has no confident answer."""
    if not body:
        return None
    result = cchardet.detect(body[:DETECT_PREFIX])
    name = result.get("encoding")
    codec = lookup(name)
    # Pure ASCII is valid UTF-8; call it that, as the default would.
    if codec == "ascii":
        return "utf-8"
    return codec


def fallback_charset(_response: Any, body: bytes) -> str:
    """aiohttp's ``fallback_charset_resolver``: used when a response names no charset."""
    return meta_charset(body) or detect(body) or "utf-8"


def decode(body: bytes, content_type: str | None, forced: str | None) -> tuple[str, str]:
    """Decode ``body``; returns (text, codec used). Raises UnicodeDecodeError when the forced
    codec does not fit, or when nothing does."""
    if forced:
        return body.decode(forced), forced
    declared = bom_codec(body) or header_charset(content_type) or meta_charset(body)
    if declared:
        try:
            return body.decode(declared), declared
        except UnicodeDecodeError:
            pass  # a wrong label is common; detection below gets a second chance
    detected = detect(body) or "utf-8"
    try:
        return body.decode(detected), detected
    except UnicodeDecodeError:
        if detected == "utf-8":
            raise
    return body.decode("utf-8"), "utf-8"
