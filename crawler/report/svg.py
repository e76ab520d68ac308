"""Inline SVG charts for the HTML report: horizontal bars, a histogram and a timeline. Pure:
numbers in, SVG text out; every label is escaped. No script: a hover title on each bar gives
the exact number."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""
AXIS = "#5f6b7a"
GRID = "#e3e7ec"
TEXT = "#1f2933"
WIDTH = 1000  # of every chart's viewBox; the page scales it to the column's width


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" {FONT} '
        f'font-size="13">' + "".join(body) + "</svg>"
    )


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def axis_ticks(value: float, most: int = 5) -> tuple[float, float]:
    """(top, step) of an axis from 0 showing ``value``: the step is 1, 2 or 5 x 10^n and
    the top a multiple of it, with at most ``most`` steps."""
    if value <= 0:
        return 1.0, 0.25 if most >= 4 else 1.0
    power = 10.0 ** math.floor(math.log10(value / most))
    for factor in (1.0, 2.0, 5.0, 10.0):
        step = factor * power
        if math.ceil(value / step - 1e-9) <= most:
            return math.ceil(value / step - 1e-9) * step, step
    raise AssertionError("unreachable")


def hbars(rows: Sequence[tuple[str, int, str]], label: str) -> str:
    """One bar a row: (name, count, colour); the count and its share of the total beside it."""
    total = sum(count for _, count, _ in rows) or 1
    biggest = max((count for _, count, _ in rows), default=0) or 1
    row_h, name_w, bar_w, width = 28, 160, WIDTH - 330, WIDTH
    body: list[str] = []
    for i, (name, count, colour) in enumerate(rows):
        y = 6 + i * row_h
        w = max(count / biggest * bar_w, 2 if count else 0)
        body.append(
            f'<text x="{name_w - 10}" y="{y + 17}" text-anchor="end" fill="{TEXT}">'
            f"{escape(name)}</text>"
            f'<rect x="{name_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" rx="3" '
            f'fill="{colour}"><title>{escape(name)}: {count:,}</title></rect>'
            f'<text x="{name_w + w + 8:.1f}" y="{y + 17}" fill="{TEXT}">{count:,} '
            f'<tspan fill="{AXIS}">({100 * count / total:.1f}%)</tspan></text>'
        )
    return _svg(width, 12 + len(rows) * row_h, label, body)


def _y_axis(left: int, top: int, plot_w: int, plot_h: int, y_max: float, step: float) -> list[str]:
    parts = []
    for i in range(round(y_max / step) + 1):
        value = step * i
        y = top + plot_h - plot_h * value / y_max
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{AXIS}" '
            f'font-size="11">{_fmt(value)}</text>'
        )
    return parts


def columns(bins: Sequence[tuple[str, int]], colour: str, label: str, unit: str) -> str:
    """A histogram: one column a bin, (label under it, count), the count above it."""
    width, height, left, top, bottom = WIDTH, 280, 60, 18, 44
    plot_w, plot_h = width - left - 10, height - top - bottom
    y_max, step = axis_ticks(max((count for _, count in bins), default=0))
    slot = plot_w / max(len(bins), 1)
    body = _y_axis(left, top, plot_w, plot_h, y_max, step)
    for i, (name, count) in enumerate(bins):
        h = plot_h * count / y_max
        x = left + i * slot
        body.append(
            f'<rect x="{x + 3:.1f}" y="{top + plot_h - h:.1f}" width="{slot - 6:.1f}" '
            f'height="{h:.1f}" rx="2" fill="{colour}"><title>{escape(name)}: {count:,} '
            f"{escape(unit)}</title></rect>"
            f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'fill="{AXIS}" font-size="11">{escape(name)}</text>'
        )
        if count:
            body.append(
                f'<text x="{x + slot / 2:.1f}" y="{top + plot_h - h - 4:.1f}" '
                f'text-anchor="middle" fill="{TEXT}" font-size="10">{count:,}</text>'
            )
    body.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'fill="{AXIS}" font-size="12">elapsed per request (up to)</text>'
    )
    return _svg(width, height, label, body)


def _time_unit(seconds: float) -> tuple[float, str]:
    """The unit to label a span of ``seconds`` in: (its length in seconds, its name)."""
    if seconds < 180:
        return 1.0, "s"
    if seconds < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _duration_label(seconds: float) -> str:
    size, name = _time_unit(seconds)
    return f"{seconds / size:.3g} {name}"


def timeline(
    points: Sequence[tuple[float, int, int]], bin_s: float, span_s: float, label: str
) -> str:
    """Requests finished per second over the run as stacked columns (ok green, failed red):
    ``points`` are (seconds since the start, ok, failed) per bin of ``bin_s`` seconds."""
    width, height, left, top, bottom = WIDTH, 280, 60, 18, 44
    plot_w, plot_h = width - left - 10, height - top - bottom
    rates = [(ok + failed) / bin_s for _, ok, failed in points]
    y_max, step = axis_ticks(max(rates, default=0))
    span = max(span_s, bin_s)
    slot = plot_w * bin_s / span
    body = _y_axis(left, top, plot_w, plot_h, y_max, step)
    for offset, ok, failed in points:
        x = left + plot_w * offset / span
        y = float(top + plot_h)
        for count, colour, name in ((ok, "#2e7d32", "ok"), (failed, "#c62828", "failed")):
            if not count:
                continue
            h = plot_h * count / bin_s / y_max
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(slot - 0.5, 0.8):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>+{_duration_label(offset)}: '
                f"{count:,} {name} ({count / bin_s:.1f}/s)</title></rect>"
            )
    size, unit = _time_unit(span)
    _, tick = axis_ticks(span / size, most=8)
    for i in range(int(span / size / tick + 1e-9) + 1):
        x = left + plot_w * i * tick * size / span
        body.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
            f'stroke="{AXIS}"/><text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle" '
            f'fill="{AXIS}" font-size="11">{i * tick:g} {unit}</text>'
        )
    body.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'fill="{AXIS}" font-size="12">time since the first request finished; '
        f"requests per second{f', {bin_s:g} s bins' if bin_s > 1 else ''}</text>"
    )
    return _svg(width, height, label, body)
