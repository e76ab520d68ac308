"""`crawler report OUT`: one self-contained HTML page about one run, read from the manifest
(streamed, so a run of millions of requests needs bounded memory) and the run's saved summary.
The page needs no network and no script: inline CSS, inline SVG charts, escaped text."""

from __future__ import annotations

import calendar
import contextlib
import json
import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..errors import CrawlerError
from ..outcome import colour as kind_colour
from ..output.layout import Layout
from ..output.manifest import MANIFEST, iter_records, last_run
from ..output.storage import replace_file
from .stats import LATENCY_EDGES_MS, OTHER_HOSTS, RunStats, Totals
from .summary import human_bytes, human_ms
from .svg import columns, hbars, timeline

MAX_HOST_ROWS = 50
MAX_REASON_ROWS = 25
TIMELINE_BINS = 240

OK_COLOUR = "#2e7d32"


class ReportError(CrawlerError):
    """No such output folder or run (exit 2)."""


# --- reading -----------------------------------------------------------------------------


def pick_run(out: Path, run: str | None) -> str:
    """The run to report: ``run``, else the last one (last.json, else the manifest's end).
    Raises ReportError when there is none."""
    manifest = out / MANIFEST
    if not manifest.is_file() and not Layout(out).private.is_dir():
        raise ReportError(f"no manifest in {out}: not a crawler output folder, or nothing ran")
    if run:
        return run
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(Layout(out).last.read_text("utf-8"))["run"])
    found = last_run(manifest) if manifest.is_file() else None
    if found is None:
        raise ReportError(f"no finished request in {manifest}")
    return found


def collect(manifest: Path, run: str | list[str]) -> RunStats:
    """Aggregate the manifest lines of ``run`` (of each shard's run, for a merged folder),
    one line at a time."""
    stats = RunStats()
    if not manifest.is_file():
        return stats  # a run with no request writes none
    for record in iter_records(manifest, run):
        stats.add_line(record)
    return stats


def _summary(out: Path, run: str) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(Layout(out).summary(run).read_text("utf-8"))
        if isinstance(data, dict):
            return data
    return {}


def _known_runs(out: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.stem for p in Layout(out).runs.glob("*.json"))[-5:]
    return []


def previous_run(out: Path, run: str) -> tuple[str, dict[str, Any]] | None:
    """The run of OUT before ``run`` (run ids sort by their start time) and its saved
    summary, when one was saved."""
    with contextlib.suppress(OSError):
        earlier = sorted(p.stem for p in Layout(out).runs.glob("*.json") if p.stem < run)
        for candidate in reversed(earlier):
            summary = _summary(out, candidate)
            if summary:
                return candidate, summary
    return None


# --- the page ----------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2933;
background:#f5f7fa;margin:0;padding:24px 32px 48px}
main{max-width:1100px;margin:0 auto}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 12px}
h3{font-size:15px;margin:16px 0 8px;color:#3e4c59}
.sub{color:#52606d;margin:0 0 20px}
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:18px 22px;
margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;
margin:0 0 18px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:12px 14px}
.card b{display:block;font-size:24px;font-variant-numeric:tabular-nums}
.card span{color:#52606d;font-size:13px}
.good b{color:#2e7d32}.bad b{color:#c62828}
.exit{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e6eaef;vertical-align:top}
th{background:#f0f3f7;font-size:13px;color:#3e4c59}
td.n,th.n{text-align:right;white-space:nowrap}
td.url{word-break:break-all;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;
width:38%}
.kind{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
.note{color:#52606d;margin:10px 0 0}
.pct{display:grid;grid-template-columns:repeat(5,1fr);gap:10px;margin:0 0 14px}
svg.chart{width:100%;height:auto;display:block}
"""


def _kind_badge(kind: str) -> str:
    colour = kind_colour(kind)
    return f'<span class="kind" style="background:{colour}">{escape(kind)}</span>'


def _status_colour(status: str) -> str:
    return {"2": OK_COLOUR, "3": "#1565c0", "4": "#ef6c00", "5": "#c62828"}.get(
        status[:1], "#616161"
    )


def _cards(stats: RunStats, summary: dict[str, Any], duration_s: float) -> str:
    rate = summary.get("requests_per_s")
    if rate is None:
        rate = stats.requests / duration_s if duration_s > 0 else 0.0
    cards = [
        ("", f"{stats.requests:,}", "requests"),
        ("good", f"{stats.ok:,}", "ok"),
        ("bad" if stats.failed else "good", f"{stats.failed:,}", "failed"),
        ("", f"{stats.retries:,}", "retries"),
        ("", human_bytes(stats.bytes), "saved"),
        ("", f"{duration_s:.1f} s" if duration_s < 60 else human_ms(duration_s * 1000), "duration"),
        ("", f"{float(rate):,.1f}", "requests / s"),
        ("", human_ms(stats.latency.quantile(0.5)), "median latency"),
    ]
    if stats.unchanged:
        cards.append(("", f"{stats.unchanged:,}", "unchanged (304)"))
    blocked = _robots_blocked(summary)
    if blocked is not None:
        cards.append(("", f"{sum(blocked.values()):,}", "kept out by robots.txt"))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {cls}"><b>{escape(value)}</b><span>{name}</span></div>'
            for cls, value, name in cards
        )
        + "</div>"
    )


def _outcome_section(stats: RunStats) -> str:
    rows = [("ok", stats.ok, OK_COLOUR)]
    rows += [(kind, count, kind_colour(kind)) for kind, count in stats.by_kind.most_common()]
    statuses = sorted(stats.by_status.items(), key=lambda item: item[0])
    no_response = stats.requests - sum(stats.by_status.values())
    status_rows = [(code, count, _status_colour(code)) for code, count in statuses]
    if no_response:
        status_rows.append(("no response", no_response, "#616161"))
    unchanged = (
        f'<p class="note">{stats.unchanged:,} of the ok requests were 304 Not Modified '
        "(unchanged): a conditional refetch kept the file saved before.</p>"
        if stats.unchanged
        else ""
    )
    return (
        "<section><h2>Outcome and error kinds</h2>"
        + hbars(rows, "requests by outcome and error kind")
        + unchanged
        + "</section><section><h2>HTTP status codes</h2>"
        + (hbars(status_rows, "requests by HTTP status") if status_rows else "<p>None.</p>")
        + "</section>"
    )


def _latency_section(stats: RunStats) -> str:
    lat = stats.latency
    if not lat.count:
        return "<section><h2>Latency</h2><p>No request finished in this run.</p></section>"
    pcts = [
        ("p50", lat.quantile(0.5)),
        ("p90", lat.quantile(0.9)),
        ("p99", lat.quantile(0.99)),
        ("max", lat.max_ms),
        ("mean", lat.total_ms / lat.count if lat.count else 0.0),
    ]
    names = [f"{e / 1000:g} s" if e >= 1000 else f"{e:g} ms" for e in LATENCY_EDGES_MS]
    bins = list(zip([*names, "more"], stats.latency_bins, strict=True))
    used = [i for i, (_, count) in enumerate(bins) if count]
    if used:
        bins = bins[max(used[0] - 1, 0) : used[-1] + 2]
    return (
        "<section><h2>Latency (elapsed_ms: first attempt to end, retries included)</h2>"
        '<div class="pct">'
        + "".join(
            f'<div class="card"><b>{escape(human_ms(v))}</b><span>{n}</span></div>' for n, v in pcts
        )
        + "</div>"
        + columns(bins, "#1565c0", "latency histogram", "requests")
        + "</section>"
    )


def _epoch(second: str) -> int:
    return calendar.timegm(datetime.fromisoformat(second).timetuple())


def _throughput_section(stats: RunStats) -> tuple[str, float]:
    """The section, and the span in seconds from the first to the last finished request."""
    if not stats.per_second:
        return "<section><h2>Throughput over time</h2><p>No data.</p></section>", 0.0
    seconds = {_epoch(key): value for key, value in stats.per_second.items()}
    start, end = min(seconds), max(seconds)
    span = end - start + 1
    bin_s = max(1, math.ceil(span / TIMELINE_BINS))
    bins: dict[int, list[int]] = {}
    for second, (ok, failed) in seconds.items():
        slot = bins.setdefault((second - start) // bin_s, [0, 0])
        slot[0] += ok
        slot[1] += failed
    points = [(index * bin_s, ok, failed) for index, (ok, failed) in sorted(bins.items())]
    first = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S")
    chart = timeline(points, bin_s, span, "requests finished per second")
    return (
        "<section><h2>Throughput over time</h2>"
        + chart
        + f'<p class="note">Requests finished per second from {escape(first)} UTC '
        "(green ok, red failed).</p></section>",
        float(span),
    )


def _hosts_section(stats: RunStats) -> str:
    ranked = sorted(stats.hosts.items(), key=lambda item: (-item[1].requests, item[0]))
    rows = []
    for host, h in ranked[:MAX_HOST_ROWS]:
        share = 100 * h.failed / h.requests if h.requests else 0.0
        rows.append(
            f"<tr><td>{escape(host)}</td><td class=n>{h.requests:,}</td>"
            f"<td class=n>{h.ok:,}</td><td class=n>{h.failed:,} ({share:.0f}%)</td>"
            f"<td class=n>{escape(human_ms(h.latency.quantile(0.5)))}</td>"
            f"<td class=n>{escape(human_ms(h.latency.quantile(0.9)))}</td>"
            f"<td class=n>{escape(human_bytes(h.bytes))}</td></tr>"
        )
    more = len(ranked) - MAX_HOST_ROWS
    note = f'<p class="note">and {more:,} more hosts with fewer requests.</p>' if more > 0 else ""
    if OTHER_HOSTS in stats.hosts:
        note += f'<p class="note">{escape(OTHER_HOSTS)}: hosts past the first few thousand.</p>'
    return (
        f"<section><h2>Hosts ({len(ranked):,})</h2><table><tr><th>host</th>"
        "<th class=n>requests</th><th class=n>ok</th><th class=n>failed</th>"
        "<th class=n>median latency</th><th class=n>p90 latency</th><th class=n>bytes</th></tr>"
        + "".join(rows)
        + "</table>"
        + note
        + "</section>"
    )


def _reasons_table(stats: RunStats) -> str:
    ranked = sorted(stats.reasons.items(), key=lambda item: (-item[1][0], item[0]))
    rows = "".join(
        f"<tr><td class=n>{count:,}</td><td>{_kind_badge(kind)}</td><td>{escape(message)}</td>"
        f'<td class="url">{escape(example)}</td></tr>'
        for (kind, message), (count, example) in ranked[:MAX_REASON_ROWS]
    )
    more = len(ranked) - MAX_REASON_ROWS
    note = f'<p class="note">and {more:,} less frequent reasons.</p>' if more > 0 else ""
    return (
        "<h3>By reason</h3><table><tr><th class=n>requests</th><th>kind</th><th>reason</th>"
        f"<th>example URL</th></tr>{rows}</table>{note}"
    )


def _failures_section(stats: RunStats, manifest: Path) -> str:
    if not stats.failed:
        return "<section><h2>Failures</h2><p>None: every request succeeded.</p></section>"
    # Crawl mode: the page that links to a failed one is what to fix (C14's referrer).
    linked = any(f.referrer for f in stats.failures)
    rows = [
        f"<tr><td>{_kind_badge(f.kind)}</td><td class=n>{f.status or '-'}</td>"
        f"<td class=n>{f.attempts}</td><td>{escape(f.job)}</td><td>{escape(f.message)}</td>"
        f'<td class="url">{escape(f.url)}</td>'
        + (f'<td class="url">{escape(f.referrer or "-")}</td>' if linked else "")
        + "</tr>"
        for f in stats.failures
    ]
    more = stats.failures_not_kept
    each = f"The first {len(stats.failures):,} failures" if more else "Each failure"
    note = (
        f'<p class="note">and {more:,} more failures: every one is in {escape(str(manifest))} '
        '(lines with <code>"ok": false</code>).</p>'
        if more
        else ""
    )
    return (
        f"<section><h2>Failures ({stats.failed:,})</h2>"
        + _reasons_table(stats)
        + f"<h3>{each}</h3><table><tr><th>kind</th>"
        "<th class=n>status</th><th class=n>attempts</th><th>job</th><th>reason</th>"
        "<th>URL</th>"
        + ("<th>linked from</th>" if linked else "")
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + note
        + "</section>"
    )


def _totals_cells(t: Totals) -> str:
    return (
        f"<td class=n>{t.requests:,}</td><td class=n>{t.ok:,}</td>"
        f"<td class=n>{t.failed:,}</td><td class=n>{t.unchanged:,}</td>"
        f"<td class=n>{t.retries:,}</td><td class=n>{escape(human_bytes(t.bytes))}</td>"
    )


_TOTALS_HEADS = (
    "<th class=n>requests</th><th class=n>ok</th><th class=n>failed</th>"
    "<th class=n>unchanged (304)</th><th class=n>retries</th><th class=n>bytes</th>"
)


def _jobs_section(stats: RunStats) -> str:
    rows = "".join(
        f"<tr><td>{escape(job)}</td>{_totals_cells(totals)}</tr>"
        for job, totals in sorted(stats.jobs.items())
    )
    return (
        f"<section><h2>Jobs</h2><table><tr><th>job</th>{_TOTALS_HEADS}</tr>{rows}</table></section>"
    )


def _robots_blocked(summary: dict[str, Any]) -> dict[str, int] | None:
    """The summary's ``robots_blocked`` (a run with crawl jobs), as counts."""
    blocked = summary.get("robots_blocked")
    if not isinstance(blocked, dict):
        return None
    return {str(k): v for k, v in blocked.items() if isinstance(v, int)}


def _crawl_section(stats: RunStats, summary: dict[str, Any]) -> str:
    """Crawl mode: pages per link depth (from the manifest's ``depth``) and the URLs
    robots.txt kept out (from the run's summary); empty for a run without crawl jobs."""
    blocked = _robots_blocked(summary)
    if not stats.depths and blocked is None:
        return ""
    parts = ["<section><h2>Crawl</h2>"]
    if stats.depths:
        depths = sorted(stats.depths.items())
        pages = sum(t.requests for _, t in depths)
        parts.append(
            f"<h3>Pages per depth ({pages:,} pages)</h3>"
            + hbars(
                [(f"depth {depth}", t.requests, "#1565c0") for depth, t in depths],
                "pages fetched per link depth",
            )
            + f"<table><tr><th>depth</th>{_TOTALS_HEADS}</tr>"
            + "".join(f"<tr><td>{depth}</td>{_totals_cells(t)}</tr>" for depth, t in depths)
            + "</table>"
            '<p class="note">Depth: link hops from the job\'s own URLs (0); pages of a '
            "job's sitemaps count as depth 0.</p>"
        )
    if blocked is not None:
        disallowed = blocked.get("disallowed", 0)
        unavailable = blocked.get("unavailable", 0)
        parts.append(
            f"<h3>robots.txt ({disallowed + unavailable:,} URLs kept out)</h3><table>"
            "<tr><th>why</th><th class=n>URLs</th></tr>"
            f"<tr><td>disallowed by its rules</td><td class=n>{disallowed:,}</td></tr>"
            "<tr><td>unavailable: the host's robots.txt failed (5xx, 429, timeout, no "
            f"connection), so nothing there is fetched</td><td class=n>{unavailable:,}</td>"
            "</tr></table>"
            '<p class="note">Not fetched and not in the manifest; each URL counted once.</p>'
        )
    parts.append("</section>")
    return "".join(parts)


def _change(previous: int, now: int, human: bool = False, worse_up: bool = False) -> str:
    delta = now - previous
    if delta == 0:
        return "<td class=n>no change</td>"
    sign = "+" if delta > 0 else "&minus;"
    amount = human_bytes(abs(delta)) if human else f"{abs(delta):,}"
    share = f" ({sign}{abs(delta) / previous:.0%})" if previous else ""
    colour = ""
    if worse_up:
        colour = f' style="color:{"#c62828" if delta > 0 else OK_COLOUR}"'
    return f"<td class=n{colour}>{sign}{escape(amount)}{share}</td>"


def _change_section(out: Path, run: str, stats: RunStats) -> str:
    """This run next to the run of OUT before it (its saved summary): requests, failures
    and bytes."""
    found = previous_run(out, run)
    if found is None:
        return ""
    before_run, before = found
    rows = []
    for name, key, now, human, worse_up in (
        ("requests", "requests", stats.requests, False, False),
        ("failed", "failed", stats.failed, False, True),
        ("bytes", "bytes", stats.bytes, True, False),
    ):
        value = before.get(key)
        if not isinstance(value, int):
            continue
        shown = (human_bytes(value), human_bytes(now)) if human else (f"{value:,}", f"{now:,}")
        rows.append(
            f"<tr><td>{name}</td><td class=n>{escape(shown[0])}</td>"
            f"<td class=n>{escape(shown[1])}</td>{_change(value, now, human, worse_up)}</tr>"
        )
    if not rows:
        return ""
    when = before.get("finished_at") or before.get("started_at")
    since = f", finished {escape(_readable_time(when))}" if when else ""
    return (
        "<section><h2>Change from the previous run</h2>"
        f"<table><tr><th></th><th class=n>previous run {escape(before_run)}</th>"
        f"<th class=n>this run</th><th class=n>change</th></tr>{''.join(rows)}</table>"
        f'<p class="note">The previous run of this output folder: {escape(before_run)}'
        f"{since} (its summary in .crawler/runs/).</p></section>"
    )


def _readable_time(iso: object) -> str:
    """``2024-05-01 02:15:00 UTC`` from the ISO 8601 time a summary holds."""
    text = str(iso)
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return text


def render_report(out: Path, run: str, stats: RunStats, summary: dict[str, Any]) -> str:
    """The whole page for one run."""
    throughput, span_s = _throughput_section(stats)
    duration = float(summary.get("duration_s") or span_s)
    exit_code = summary.get("exit_code")
    if isinstance(exit_code, int):
        colour = OK_COLOUR if exit_code == 0 else "#c62828" if exit_code == 1 else "#ef6c00"
        meaning = exitcodes.MEANING.get(exit_code, "")
        exit_html = (
            f'<span class="exit" style="background:{colour}">exit {exit_code}</span> '
            f"{escape(meaning)}"
        )
    else:
        exit_html = "no summary saved: the run is still going, or was killed"
    when = " &middot; ".join(
        f"{name} {escape(_readable_time(summary[key]))}"
        for name, key in (("started", "started_at"), ("finished", "finished_at"))
        if summary.get(key)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>crawler run {escape(run)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>crawler run {escape(run)}</h1>"
        f'<p class="sub">{exit_html}<br>{escape(str(out))}'
        f"{' &middot; ' + when if when else ''}</p>"
        + _cards(stats, summary, duration)
        + _change_section(out, run, stats)
        + _outcome_section(stats)
        + _crawl_section(stats, summary)
        + _latency_section(stats)
        + throughput
        + _hosts_section(stats)
        + _failures_section(stats, out / MANIFEST)
        + _jobs_section(stats)
        + "</main></body></html>\n"
    )


def write_report(out: Path, run: str | None = None, target: Path | None = None) -> Path:
    """Write the report of ``run`` (default: the last) to ``target`` (default
    OUT/.crawler/report-<run>.html); returns its path. Raises ReportError for a missing
    folder or run, OSError when the file cannot be written."""
    run_id = pick_run(out, run)
    summary = _summary(out, run_id)
    # A merged folder (crawler merge): its lines keep each shard's own run id.
    runs = summary.get("runs")
    if isinstance(runs, list) and runs and all(isinstance(r, str) for r in runs):
        stats = collect(out / MANIFEST, runs)
    else:
        stats = collect(out / MANIFEST, run_id)
    if not stats.requests and not summary:
        known = ", ".join(_known_runs(out)) or "none"
        raise ReportError(f"no request of run {run_id!r} in {out / MANIFEST} (runs: {known})")
    page = render_report(out, run_id, stats, summary)
    path = target or Layout(out).report(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, page.encode())
    return path
