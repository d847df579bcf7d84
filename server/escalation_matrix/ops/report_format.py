"""Render a ``Report`` as a text table, JSON, CSV, or a PNG chart of the rate over time."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ..durations import duration_label, measured_label
from .reports import Report

FORMATS = ("text", "json", "csv")
NAME_MAX = 60  # widest name column in the text report; longer names end in an ellipsis


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def to_text(r: Report) -> str:
    out = [f"Escalation report ({r.period}) {r.start} to {r.end}", "",
           f"Decisions evaluated: {r.decisions}    Escalation records: {r.records}    Open now: {r.open_now}",
           f"Not counted as escalations: repeats {r.repeats}, re-asks {r.reasked}, refusals {r.refusals}, "
           f"answered from preferences {r.auto_answered}", ""]
    out.append(f"{'rate':<8}{'escalations':>12}{'rate':>9}{'target':>9}{'alert >':>9}  status")
    for line in r.rates:
        out.append(f"{line.name:<8}{line.escalations:>12}{_pct(line.rate):>9}{_pct(line.target):>9}"
                   f"{_pct(line.alert_above):>9}  {line.status}")
    for alert in r.alerts:
        out.append(f"ALERT: {alert}")
    out += ["", f"{'resolution':<14}{'resolved':>9}{'median':>9}{'p90':>9}{'target':>9}{'within':>9}"]
    for res in r.resolution:
        out.append(f"{res.name:<14}{res.resolved:>9}{measured_label(res.median_seconds):>9}"
                   f"{measured_label(res.p90_seconds):>9}{_target(res.target_seconds):>9}"
                   f"{_pct(res.within_target):>9}")
    tables = (("by source", r.by_source), ("by type", r.by_type), ("by routing level", r.by_level),
              ("by reason", r.by_reason), ("resolution methods", r.resolution_methods))
    # one name column for every table, as wide as the longest name (a reason is free text: capped)
    width = min(NAME_MAX, max([len(name) for _, table in tables for name in table] + [12]))
    for title, table in tables:
        total = sum(table.values()) or 1
        out += ["", title]
        out += [f"  {_fit(name, width):<{width}}  {count:>7}  {count / total:>7.1%}"
                for name, count in table.items()] or ["  (none)"]
    out += ["", f"blocked tasks ({len(r.blocked)})"]
    out += [f"  {b['id']}  task {b['task_id'] or '-'}  {b['severity']}  {b['assignee'] or '-'}  since {b['blocked_at']}"
            for b in r.blocked[:50]] or ["  (none)"]
    out += ["", f"actor scores ({len(r.actors)})"]
    out += [f"  {_fit(a.actor, 24):<24}{a.decisions:>6} decisions {a.agreed:>6} agreed  period "
            f"{'-' if a.period_score is None else f'{a.period_score:.1f}':>5}  score {'-' if a.score_at_end is None else f'{a.score_at_end:.1f}':>5}"
            f"  tickets {a.tickets}  suspensions {a.suspensions}" for a in r.actors] or ["  (none)"]
    out += ["", f"replacements ({len(r.replacements)})"]
    out += [f"  {p.actor} -> {p.replacement}  {p.suspended_at} to {p.reinstated_at or 'until ' + p.until}"
            f"{' by ' + p.reinstated_by if p.reinstated_by else ''}  items {p.items_moved}  ticket {p.ticket or '-'}"
            for p in r.replacements] or ["  (none)"]
    q = r.decision_quality
    if q is not None:
        out += ["", "decision quality",
                f"  escalation rate {_pct(q.escalation_rate)} (target {_pct(q.target_rate)}), trend {q.trend}",
                f"  answered {q.answered}, response time median {measured_label(q.response_median_seconds)}, "
                f"mean {measured_label(q.response_mean_seconds)}",
                f"  override rate {_pct(q.override_rate)}; structured answers "
                + (", ".join(f"{k} {v}" for k, v in sorted(q.structured.items())) or "none"),
                f"  outcomes: necessary {q.necessary}, unnecessary {q.unnecessary}, missed {q.missed}; "
                f"false positives {_pct(q.false_positive_rate)}, false negatives {_pct(q.false_negative_rate)}",
                f"  adaptive threshold changes {q.threshold_changes}",
                f"  batches delivered {q.batches_delivered}, "
                f"{'-' if q.items_per_batch is None else f'{q.items_per_batch:.1f}'} items per batch, "
                f"{q.notifications_saved} notifications saved"]
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
    for res in r.resolution:  # status holds only a status word; the share within target is a row of its own
        median_status = "" if res.median_seconds is None or res.target_seconds is None else (
            "ok" if res.median_seconds <= res.target_seconds else "above target")
        w.writerow(["resolution_resolved", res.name, res.resolved, "", ""])
        w.writerow(["resolution_median_seconds", res.name, _num(res.median_seconds), _num(res.target_seconds),
                    median_status])
        w.writerow(["resolution_p90_seconds", res.name, _num(res.p90_seconds), _num(res.target_seconds), ""])
        w.writerow(["resolution_within_target", res.name,
                    "" if res.within_target is None else round(res.within_target, 4), "", ""])
    for section, table in (("source", r.by_source), ("type", r.by_type), ("level", r.by_level),
                           ("reason", r.by_reason), ("resolution_method", r.resolution_methods)):
        for name, count in table.items():
            w.writerow([section, name, count, "", ""])
    w.writerow(["blocked", "total", len(r.blocked), "", ""])
    for a in r.actors:
        w.writerow(["actor_decisions", a.actor, a.decisions, "", ""])
        w.writerow(["actor_score", a.actor, _num(a.score_at_end), "", ""])
    for p in r.replacements:
        w.writerow(["replacement", f"{p.actor}->{p.replacement}", p.items_moved, "", p.reinstated_at or "suspended"])
    q = r.decision_quality
    if q is not None:
        for name, value, target in (("escalation_rate", q.escalation_rate, q.target_rate),
                                    ("response_median_seconds", q.response_median_seconds, ""),
                                    ("override_rate", q.override_rate, ""),
                                    ("false_positive_rate", q.false_positive_rate, ""),
                                    ("false_negative_rate", q.false_negative_rate, ""),
                                    ("missed", q.missed, ""), ("threshold_changes", q.threshold_changes, "")):
            w.writerow(["decision_quality", name, _num(value), target, ""])
        w.writerow(["decision_quality", "trend", q.trend, "", ""])  # the status column holds status words only
        w.writerow(["batch_efficiency", "batches_delivered", q.batches_delivered, "", ""])
        w.writerow(["batch_efficiency", "items_per_batch", _num(q.items_per_batch), "", ""])
        w.writerow(["batch_efficiency", "notifications_saved", q.notifications_saved, "", ""])
    for point in r.trend:
        w.writerow(["trend_decisions", point.start, point.decisions, "", ""])
        w.writerow(["trend_rate", point.start, "" if point.rate is None else round(point.rate, 6), "", ""])
    return buf.getvalue()


def _num(value: float | None) -> str | float:
    return "" if value is None else value


def render_report(r: Report, fmt: str) -> str:
    if fmt == "json":
        return r.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return to_csv(r)
    return to_text(r)


def _pyplot() -> Any:
    """matplotlib is an optional extra: without it the chart says how to get it."""
    try:
        import matplotlib
    except ImportError:
        from ..errors import DependencyError

        raise DependencyError("the chart needs matplotlib; install it with: pip install 'escalation-matrix[charts]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(r: Report) -> Any:
    """The chart as a matplotlib figure: the total and per-severity rate per trend bucket, with
    the total target. A bucket without decisions has no rate and is drawn as a gap, not as 0 %;
    the legend sits beside the plot so it never covers a point."""
    plt = _pyplot()

    def pct(value: float | None) -> float:
        return math.nan if value is None else value * 100

    x = list(range(len(r.trend)))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(x, [pct(p.rate) for p in r.trend], marker="o", linewidth=2, label="total")
    for sev in ("L1", "L2", "L3", "L4"):
        ax.plot(x, [pct(p.by_severity.get(sev)) for p in r.trend], marker=".", linewidth=1, label=sev)
    total = next(line for line in r.rates if line.name == "total")
    ax.axhline(total.target * 100, color="red", linestyle="--", linewidth=1, label="total target")
    empty = [i for i, p in enumerate(r.trend) if not p.decisions]
    if empty:  # say why a line breaks
        ax.plot([], [], " ", label=f"no data: {len(empty)} of {len(x)}")
    ax.set_xticks(x, [p.start[:10] for p in r.trend])
    ax.set_title(f"Escalation rate ({r.period}, {r.start[:10]} to {r.end[:10]})")
    ax.set_ylabel("% of decisions")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    return fig


def chart(r: Report, path: str | Path) -> Path:
    """Write ``figure(r)`` as a PNG."""
    plt = _pyplot()
    path = Path(path)
    fig = figure(r)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _target(seconds: float | None) -> str:
    return duration_label(seconds) if seconds is not None else "-"
