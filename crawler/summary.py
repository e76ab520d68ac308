"""The run summary (C13): built from the run's totals, printed as one line and saved as JSON
under OUT/.crawler/runs/<run>.json with a copy in OUT/.crawler/last.json."""

from __future__ import annotations

import json
from typing import Any

from .storage import Storage


def build_summary(
    *,
    run: str,
    started_at: str,
    finished_at: str,
    duration_s: float,
    totals: dict[str, Any],
    this_invocation: int,
    exit_code: int,
    out: str,
) -> dict[str, Any]:
    rate = this_invocation / duration_s if duration_s > 0 else 0.0
    return {
        "run": run,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(duration_s, 3),
        **totals,
        "requests_this_invocation": this_invocation,
        "requests_per_s": round(rate, 1),
        "exit_code": exit_code,
        "out": out,
    }


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def summary_line(summary: dict[str, Any]) -> str:
    failed = summary["failed"]
    kinds = ", ".join(f"{k} {v}" for k, v in summary["by_kind"].items())
    failed_text = f"{failed} failed ({kinds})" if failed else "0 failed"
    return (
        f"run {summary['run']}: {summary['requests']} requests, {summary['ok']} ok, "
        f"{failed_text}, {_human_bytes(summary['bytes'])}, "
        f"{summary['duration_s']:.1f} s, {summary['requests_per_s']:.1f} req/s; "
        f"results in {summary['out']}"
    )


def save_summary(storage: Storage, summary: dict[str, Any]) -> None:
    data = (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
    storage.write_bytes(f".crawler/runs/{summary['run']}.json", data)
    storage.write_bytes(".crawler/last.json", data)
