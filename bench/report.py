"""The bench's output: a machine line, then one markdown table per scenario and notes."""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

_NUMERIC = re.compile(r"^[\d,.%–-]+( [%xs])?$")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from /proc/mounts."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_line(tools: dict[str, str], pinning: str, disk: Path) -> str:
    parts = [
        cpu_model(),
        f"{os.cpu_count()} CPUs",
        f"Linux {platform.release()}",
        f"Python {platform.python_version()}",
    ]
    for package in ("aiohttp", "uvloop"):
        version = package_version(package)
        parts.append(f"{package} {version}" if version else f"no {package}")
    parts += [f"{name} {version}" for name, version in tools.items()]
    parts += [pinning, f"project disk: {filesystem(disk)}"]
    return "Machine: " + ", ".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    right = [i for i in range(len(headers)) if rows and all(_NUMERIC.match(r[i]) for r in rows)]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(headers), "| " + " | ".join(rule) + " |", *map(line, rows)])


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def say(text: str) -> None:
    """Progress on stderr; the report itself goes to stdout."""
    print(text, file=sys.stderr, flush=True)
