"""File names for saved results (C6): pure functions, no disk access.

Every name is cleaned so it is safe on Linux, macOS and Windows and stays inside the job
folder whatever a template or URL holds.
"""

from __future__ import annotations

import functools
import mimetypes
import re
import string
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from .expand import FetchTask

MAX_NAME = 200  # characters per path component (C6)
# Bytes per component, UTF-8: ext4 and most Linux filesystems allow 255, NTFS 255 UTF-16 units
# and HFS+ stores names decomposed (NFD), which can take more units; 200 leaves room for all.
MAX_NAME_BYTES = 200
# A rendered template deeper or longer than this falls back to the default name, so a hostile
# URL cannot build a path the operating system refuses (PATH_MAX is 4096 bytes on Linux).
MAX_DEPTH = 32
MAX_PATH_BYTES = 1024
_HASH_LEN = 16
_MAX_EXT = 16  # a longer "extension" after the last dot is part of the stem

# mimetypes without the host's /etc/mime.types, so names do not differ between machines.
_TYPES = mimetypes.MimeTypes(filenames=())
_TEXT_EXT = {"text/html": ".html", "application/xhtml+xml": ".html", "text/csv": ".csv"}
_BYTES_EXT_OVERRIDES = {"text/plain": ".txt", "image/jpeg": ".jpg", "application/json": ".json"}
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._-]+")
# Characters Windows forbids in names, control bytes, and the separators.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"\\|?*/]')
# Unicode categories never kept in a name: controls, format characters (bidi overrides,
# zero-width characters), surrogates, unassigned code points, and every separator but ' '.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp", "Zs"})
# Windows reserves these device names, with or without an extension, and ignores spaces before
# the extension ("CON .txt" is the console too).
_RESERVED = re.compile(
    r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$) *(\..*)?$", re.I
)


def is_windows_reserved(name: str) -> bool:
    """Whether Windows takes ``name`` for a device (``CON``, ``com1.txt``, ``nul .x``)."""
    return _RESERVED.match(name) is not None


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
    if not mime:
        return ".bin"
    return _TYPES.guess_extension(mime, strict=True) or ".bin"


def slug(url: URL, limit: int = 80) -> str:
    """A short readable slug of host and path: letters, digits, '.', '_' and '-' only."""
    port = f"_{url.port}" if url.explicit_port else ""
    # raw_host (punycode for IDN): url.host decodes IDNA on every call, and a slug is ASCII.
    text = f"{url.raw_host or 'host'}{port}_{url.path.strip('/')}"
    text = _SLUG_BAD.sub("_", text).strip("._-")[:limit].rstrip("._-")
    return text.lower() or "url"


def default_name(url: URL, key: str, ext: str) -> str:
    return f"{slug(url)}-{key[:_HASH_LEN]}{ext}"


def _safe_chars(part: str) -> str:
    part = _UNSAFE.sub("_", part)
    if part.isascii():
        return part
    part = unicodedata.normalize("NFC", part)  # macOS would treat é and e + ◌́ as one name
    return "".join(
        "_" if c != " " and unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in part
    )


def _split_ext(base: str) -> tuple[str, str]:
    """(stem, ".ext"), or (base, "") when there is no short extension to keep."""
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or not ext or len(ext) > _MAX_EXT or " " in ext:
        return base, ""
    return stem, f".{ext}"


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` cut down (the stem only) to MAX_NAME characters and MAX_NAME_BYTES."""
    room = MAX_NAME - len(tail)
    room_bytes = MAX_NAME_BYTES - len(tail.encode())
    stem = stem[:room]
    while len(stem.encode()) > room_bytes:
        # Cut roughly by the excess, at least one character, never splitting a character.
        excess = len(stem.encode()) - room_bytes
        stem = stem[: -max(1, excess // 4)]
    return stem + tail


def clean_component(part: str) -> str:
    """One path component made safe; '' when nothing usable is left."""
    part = _safe_chars(part).strip().rstrip(". ")
    if part in ("", ".", ".."):
        return ""
    if len(part) > MAX_NAME or len(part.encode()) > MAX_NAME_BYTES:
        stem, ext = _split_ext(part)
        part = _fit(stem, ext).rstrip(". ")
        if not part:
            return ""
    if is_windows_reserved(part):
        # A device name gets a "_" in front; room is made for it within MAX_NAME.
        part = "_" + (part[: MAX_NAME - 1] if len(part) >= MAX_NAME else part)
        while len(part.encode()) > MAX_NAME_BYTES:
            part = part[:-1]
    return part


@functools.lru_cache(maxsize=64)
def _template_shape(template: str) -> tuple[bool, bool]:
    """(whether the template has ``{ext}``, whether it ends with ``{path}``: nothing but
    slashes after its last ``{path}``)."""
    parsed = list(string.Formatter().parse(template))
    has_ext = any(field == "ext" for _, field, _, _ in parsed)
    if parsed and parsed[-1][1] is None and not parsed[-1][0].strip("/\\"):
        parsed.pop()  # a trailing literal of only slashes
    ends_with_path = bool(parsed) and parsed[-1][1] == "path"
    return has_ext, ends_with_path


def _path_value(url: URL) -> tuple[str, bool]:
    """``{path}``: the URL path without its outer slashes; a folder (``/``, ``/docs/``) is
    named by its ``index`` inside it, as wget does (``index``, ``docs/index``). Also whether
    it is such an index."""
    path = url.path
    if path.endswith("/") or not path:
        return f"{path.strip('/')}/index".lstrip("/"), True
    return path.strip("/"), False


def render_template(template: str, url: URL, key: str, index: int, ext: str) -> str:
    """Fill a ``filename`` template and clean every component. '' if nothing usable remains,
    or when the result is deeper or longer than a path should be (the caller then uses the
    default name). A folder URL's ``{path}`` ends in ``index``; when the template ends with
    it and has no ``{ext}``, the extension is added (``{path}`` of ``http://h/`` saved as
    HTML: ``index.html``), so the file opens as what it is."""
    path, is_index = _path_value(url)
    values = {
        "host": url.host or "",
        "path": path,
        "query": url.raw_query_string,
        "hash": key[:_HASH_LEN],
        "index": str(index),
        "ext": ext,
    }
    filled = template.format_map(values)
    if is_index:
        has_ext, ends_with_path = _template_shape(template)
        if ends_with_path and not has_ext:
            filled = filled.rstrip("/\\") + ext  # ends in "index": "index.html"
    parts = [p for p in (clean_component(p) for p in re.split(r"[/\\]", filled)) if p]
    name = "/".join(parts)
    if len(parts) > MAX_DEPTH or len(name.encode()) > MAX_PATH_BYTES:
        return ""
    return name


def with_hash(name: str, key: str) -> str:
    """``name`` made unique by the request hash, before the extension."""
    folder, _, base = name.rpartition("/")
    stem, ext = _split_ext(base)
    base = _fit(stem, f"-{key[:_HASH_LEN]}{ext}")
    return f"{folder}/{base}" if folder else base


def choose_name(task: FetchTask, ext: str, claim: Callable[[str, str, str], bool]) -> str:
    """The file name of a request inside its job folder, unique within the job ignoring case
    (C6): the template's, else with the request hash added, else the default (which holds
    the hash, so needs no claim). ``claim(job, name, key)`` reserves a name for a request;
    the run claims in its state, the dry run in a scratch table."""
    job = task.job
    default = default_name(task.url, task.key, ext)
    if not job.filename:
        return default
    name = render_template(job.filename, task.url, task.key, task.index, ext)
    if name:
        if claim(job.name, name, task.key):
            return name
        name = with_hash(name, task.key)
        if claim(job.name, name, task.key):
            return name
    # The default is claimed too in a templated job, so no template name can take it later;
    # should a template name have taken it first, the request hash goes in once more.
    if claim(job.name, default, task.key):
        return default
    return with_hash(default, task.key)
