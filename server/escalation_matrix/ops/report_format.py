"""Render a ``Report`` as a text table, JSON, CSV, or a PNG chart of the rate over time."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .reports import Report, seconds_label

FORMATS = ("text", "json", "csv")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def to_text(r: Report) -> str:
    out = [f"Escalation report ({r.period}) {r.start} to {r.end}", "",
           f"Decisions evaluated: {r.decisions}    Escalation records: {r.records}    Open now: {r.open_now}", ""]
    out.append(f"{'rate':<8}{'escalations':>12}{'rate':>9}{'target':>9}{'alert >':>9}  status")
    for line in r.rates:
        out.append(f"{line.name:<8}{line.escalations:>12}{_pct(line.rate):>9}{_pct(line.target):>9}"
                   f"{_pct(line.alert_above):>9}  {line.status}")
    for alert in r.alerts:
        out.append(f"ALERT: {alert}")
    out += ["", f"{'resolution':<14}{'resolved':>9}{'median':>9}{'p90':>9}{'target':>9}{'within':>9}"]
    for line in r.resolution:
        out.append(f"{line.name:<14}{line.resolved:>9}{seconds_label(line.median_seconds):>9}"
                   f"{seconds_label(line.p90_seconds):>9}{seconds_label(line.target_seconds):>9}"
                   f"{_pct(line.within_target):>9}")
    for title, table in (("by source", r.by_source), ("by type", r.by_type), ("by routing level", r.by_level),
                         ("by reason", r.by_reason), ("resolution methods", r.resolution_methods)):
        total = sum(table.values()) or 1
        out += ["", title]
        out += [f"  {name:<44}{count:>7}  {count / total:>7.1%}" for name, count in table.items()] or ["  (none)"]
    out += ["", f"blocked tasks ({len(r.blocked)})"]
    out += [f"  {b['id']}  task {b['task_id'] or '-'}  {b['severity']}  {b['assignee'] or '-'}  since {b['blocked_at']}"
            for b in r.blocked[:50]] or ["  (none)"]
    out += ["", "trend", f"  {'from':<22}{'decisions':>10}{'escalations':>12}{'rate':>9}"]
    out += [f"  {p.start:<22}{p.decisions:>10}{p.escalations:>12}{_pct(p.rate):>9}" for p in r.trend]
    return "\n".join(out) + "\n"


def to_csv(r: Report) -> str:
    """Long form: section, name, value, target, status - one row per figure, easy to pivot."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "name", "value", "target", "status"])
    w.writerow(["period", r.period, f"{r.start}/{r.end}", "", ""])
    w.writerow(["decisions", "total", r.decisions, "", ""])
    for line in r.rates:
        w.writerow(["rate", line.name, "" if line.rate is None else round(line.rate, 6), line.target, line.status])
    for line in r.resolution:
        w.writerow(["resolution_median_seconds", line.name, line.median_seconds or "", line.target_seconds or "",
                    "" if line.within_target is None else round(line.within_target, 4)])
    for section, table in (("source", r.by_source), ("type", r.by_type), ("level", r.by_level),
                           ("reason", r.by_reason), ("resolution_method", r.resolution_methods)):
        for name, count in table.items():
            w.writerow([section, name, count, "", ""])
    w.writerow(["blocked", "total", len(r.blocked), "", ""])
    for p in r.trend:
        w.writerow(["trend_rate", p.start, "" if p.rate is None else round(p.rate, 6), "", p.decisions])
    return buf.getvalue()


def render_report(r: Report, fmt: str) -> str:
    if fmt == "json":
        return r.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return to_csv(r)
    return to_text(r)


def chart(r: Report, path: str | Path) -> Path:
    """A PNG of the total and per-severity rate over the trend buckets, with the total target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = [p.start[:10] for p in r.trend]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        ax.plot(labels, [(p.rate or 0) * 100 for p in r.trend], marker="o", linewidth=2, label="total")
        for sev in ("L1", "L2", "L3", "L4"):
            ax.plot(labels, [(p.by_severity.get(sev) or 0) * 100 for p in r.trend], linewidth=1, label=sev)
        total = next(line for line in r.rates if line.name == "total")
        ax.axhline(total.target * 100, color="red", linestyle="--", linewidth=1, label="total target")
        ax.set_title(f"Escalation rate ({r.period}, {r.start[:10]} to {r.end[:10]})")
        ax.set_ylabel("% of decisions")
        ax.legend(loc="upper right", fontsize=8)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
