"""File names for saved results (C6): pure functions, no disk access.

Every name is cleaned so it is safe on Linux, macOS and Windows and stays inside the job
folder whatever a template or URL holds.
"""

from __future__ import annotations

import mimetypes
import re

from yarl import URL

MAX_NAME = 200  # characters per path component (C6)
_HASH_LEN = 16

# mimetypes without the host's /etc/mime.types, so names do not differ between machines.
_TYPES = mimetypes.MimeTypes(filenames=())
_TEXT_EXT = {"text/html": ".html", "application/xhtml+xml": ".html", "text/csv": ".csv"}
_BYTES_EXT_OVERRIDES = {"text/plain": ".txt", "image/jpeg": ".jpg", "application/json": ".json"}
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")
# Characters Windows forbids in names, control bytes, and the separators.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"\\|?*]')
# Windows reserves these device names, with or without an extension.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$", re.I)


def mime_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def extension(save: str, content_type: str | None) -> str:
    """The file extension (with its dot) for a save mode and a response Content-Type."""
    mime = mime_type(content_type)
    if save == "json":
        return ".json"
    if save == "text":
        if mime in _TEXT_EXT:
            return _TEXT_EXT[mime]
        return ".xml" if mime.endswith("xml") else ".txt"
    if mime in _BYTES_EXT_OVERRIDES:
        return _BYTES_EXT_OVERRIDES[mime]
    return _TYPES.guess_extension(mime, strict=True) or ".bin" if mime else ".bin"


def slug(url: URL, limit: int = 80) -> str:
    """A short readable slug of host and path: letters, digits, '.', '_' and '-' only."""
    port = f"_{url.port}" if url.explicit_port else ""
    text = f"{url.host or 'host'}{port}_{url.path.strip('/')}"
    text = _SLUG_BAD.sub("_", text).strip("._-")[:limit].rstrip("._-")
    return text.lower() or "url"


def default_name(url: URL, key: str, ext: str) -> str:
    return f"{slug(url)}-{key[:_HASH_LEN]}{ext}"


def clean_component(part: str) -> str:
    """One path component made safe; '' when nothing usable is left."""
    part = _UNSAFE.sub("_", part).strip().rstrip(". ")
    if part in ("", ".", ".."):
        return ""
    if _RESERVED.match(part):
        part = "_" + part
    if len(part) > MAX_NAME:
        stem, dot, ext = part.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = part, ""
        keep = MAX_NAME - len(ext) - (1 if ext else 0)
        part = stem[:keep].rstrip(". ") + (f".{ext}" if ext else "")
    return part


def render_template(template: str, url: URL, key: str, index: int, ext: str) -> str:
    """Fill a ``filename`` template and clean every component. '' if nothing usable remains."""
    values = {
        "host": url.host or "",
        "path": url.path.strip("/"),
        "query": url.raw_query_string,
        "hash": key[:_HASH_LEN],
        "index": str(index),
        "ext": ext,
    }
    filled = template.format_map(values)
    parts = [clean_component(p) for p in re.split(r"[/\\]", filled)]
    return "/".join(p for p in parts if p)


def with_hash(name: str, key: str) -> str:
    """``name`` made unique by the request hash, before the extension."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    suffix = f"-{key[:_HASH_LEN]}"
    stem = stem[: MAX_NAME - len(suffix) - len(ext) - 1]
    base = f"{stem}{suffix}" + (f".{ext}" if ext else "")
    return f"{folder}/{base}" if folder else base
