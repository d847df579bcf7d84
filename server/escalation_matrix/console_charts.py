"""Server-rendered SVG charts for the console dashboard: no script, no external asset, so they
work under the console's strict Content-Security-Policy and print as they look."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from .durations import duration_label, measured_label
from .ops.reports import Report

INK, MUTED, LINE, BAD, OK = "#1d2330", "#5b6475", "#d9dde5", "#a4161a", "#17683a"
SERIES = {"total": "#2b3a55", "L1": "#2f6f9f", "L2": "#a87b00", "L3": "#b4451f", "L4": "#7b1f3a"}


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def rate_chart(report: Report, width: int = 720, height: int = 260) -> Markup:
    """Total escalation rate per trend bucket against its target and alert lines. A bucket without
    decisions has no rate: the line breaks there instead of dropping to 0 %."""
    left, right, top, bottom = 48, 150, 16, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    total = next(line for line in report.rates if line.name == "total")
    values = [p.rate for p in report.trend]
    peak = max([v for v in values if v is not None] + [total.alert_above, total.target]) * 1.15 or 0.01
    n = max(len(values), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="{LINE}"/>']
    for k in range(5):  # grid and y labels
        grid = peak * k / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(grid):.1f}" y2="{y(grid):.1f}" stroke="{LINE}"/>'
                    f'<text x="{left - 6}" y="{y(grid) + 4:.1f}" text-anchor="end" fill="{MUTED}">{grid:.0%}</text>')
    lines = [(total.target, "target", OK), (total.alert_above, "alert", BAD)]
    if total.alert_above == total.target:  # one line, one label: they would print over each other
        lines = [(total.target, "target = alert", BAD)]
    for value, name, colour in lines:
        body.append(f'<line class="{name.split()[0]}" x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                    f'stroke="{colour}" stroke-dasharray="5 4"/>'
                    f'<text x="{left + plot_w + 6}" y="{y(value) + 4:.1f}" fill="{colour}">{name} {value:.1%}</text>')
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, v in enumerate(values):
        if v is None:
            if segment:
                segments.append(segment)
            segment = []
            body.append(f'<text class="gap" x="{x(i):.1f}" y="{top + plot_h - 6}" text-anchor="middle" '
                        f'fill="{MUTED}">–</text>')
            continue
        segment.append(f"{x(i):.1f},{y(v):.1f}")
    if segment:
        segments.append(segment)
    for points in segments:
        body.append(f'<polyline class="rate" points="{" ".join(points)}" fill="none" stroke="{SERIES["total"]}" '
                    f'stroke-width="2"/>')
    for i, p in enumerate(report.trend):
        if p.rate is not None:
            colour = BAD if p.rate > total.alert_above else SERIES["total"]
            body.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(p.rate):.1f}" r="3.5" fill="{colour}">'
                        f"<title>{escape(p.start[:10])}: {p.rate:.2%} of {p.decisions} decisions</title></circle>")
    step = max(1, math.ceil(n / 10))
    for i, p in enumerate(report.trend):
        if i % step == 0 or i == n - 1:
            body.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="{MUTED}">'
                        f"{escape(p.start[5:10])}</text>")
    empty = sum(1 for v in values if v is None)
    unit = "week" if report.period == "weekly" else "day"
    note = f"; – marks a {unit} without decisions ({empty})" if empty else ""
    body.append(f'<text x="{left}" y="{height - 8}" fill="{MUTED}">escalations / decisions per {unit}{note}</text>')
    return _svg(width, height, "Escalation rate against the target", body)


def target_bars(rows: list[tuple[str, float | None, float | None, str]], title: str,
                width: int = 720, row_h: int = 30) -> Markup:
    """One bar per row: the measured value as a share of its target (the target line at 100 %),
    with the values written out. ``rows``: (name, value, target, label)."""
    left, right, top = 150, 210, 10
    height = top + row_h * max(len(rows), 1) + 24
    plot_w = width - left - right
    scale = 2.0  # the axis runs to twice the target; longer bars are cut and marked
    target_x = left + plot_w / scale
    body = [f'<line class="target" x1="{target_x:.1f}" x2="{target_x:.1f}" y1="{top - 4}" '
            f'y2="{height - 20}" stroke="{OK}" stroke-dasharray="4 3"/>',
            f'<text x="{target_x:.1f}" y="{height - 6}" text-anchor="middle" fill="{OK}">target</text>']
    for i, (name, value, target, label) in enumerate(rows):
        cy = top + i * row_h
        body.append(f'<text x="{left - 8}" y="{cy + row_h / 2 + 4:.1f}" text-anchor="end" fill="{INK}">'
                    f"{escape(name)}</text>")
        if value is None or not target:
            body.append(f'<text x="{left + 4}" y="{cy + row_h / 2 + 4:.1f}" fill="{MUTED}">{escape(label)}</text>')
            continue
        share = value / target
        bar_w = plot_w * min(share, scale) / scale
        colour = OK if share <= 1 else BAD
        body.append(f'<rect class="bar" x="{left}" y="{cy + 5}" width="{max(bar_w, 1):.1f}" height="{row_h - 10}" '
                    f'fill="{colour}" opacity=".85"><title>{escape(name)}: {escape(label)}</title></rect>')
        body.append(f'<text x="{left + plot_w + 8}" y="{cy + row_h / 2 + 4:.1f}" fill="{colour}">'
                    f"{escape(label)}{' ›' if share > scale else ''}</text>")
    return _svg(width, height, title, body)


def response_rows(report: Report) -> list[tuple[str, float | None, float | None, str]]:
    """Median time to an answer or resolution per severity and routing level, against its target."""
    rows = []
    for line in report.resolution:
        name = line.name if line.name.startswith("L") else f"level: {line.name}"
        if line.median_seconds is None:
            label = "no answered escalation in the period"
        else:
            label = (f"median {measured_label(line.median_seconds)}"
                     + (f" / target {duration_label(line.target_seconds)}" if line.target_seconds else "")
                     + f" ({line.resolved})")
        rows.append((name, line.median_seconds, line.target_seconds, label))
    return rows


def rate_rows(report: Report) -> list[tuple[str, float | None, float | None, str]]:
    rows: list[tuple[str, float | None, float | None, str]] = []
    for line in report.rates:
        label = "no decisions" if line.rate is None else f"{line.rate:.2%} / target {line.target:.1%} ({line.status})"
        rows.append((line.name, line.rate, line.target, label))
    return rows
