"""The bench's documents: deterministic bodies written once into a document root that both
servers serve (nginx and rawserver.py), and the expected content clients are checked against.

Layout under the root: ``b/NNNNN.bin`` (binary, about 2 KB), ``t/NNNNN.txt`` (UTF-8 text with
some non-ASCII words), ``j/NNNNN.json`` (a JSON object) and ``big-<bytes>.bin`` (one large
body, with its sha256 next to it in ``big-<bytes>.bin.sha256``).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
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
    if root.exists():
        shutil.rmtree(root)
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
