"""Daily, weekly and monthly escalation reports: escalation
rate overall and per severity against targets with alert flags, counts by type, reason, source and
routing level, resolution times against targets, resolution methods, blocked tasks and a trend.

A rate is escalation records created over every evaluated request (the ``decisions`` table: every
classify, check_scope, escalate, clarify and pipeline report_item, proceed included). A repeat of an
open issue, a re-ask answered from an earlier answer and a refusal on a locked or handed-off task
are evaluated requests but not new escalations; the report counts them separately. Rendering lives in ``report_format``."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..errors import InputError
from ..models import Severity
from ..store import Store, iso, parse_iso
from .decision_metrics import DecisionQuality, decision_quality
from .oversight_report import ActorLine, ReplacementLine, actor_lines, replacement_lines

if TYPE_CHECKING:
    from ..loader import Policy

Period = Literal["daily", "weekly", "monthly"]
PERIODS = ("daily", "weekly", "monthly")


class RateLine(BaseModel):
    name: str = Field(description="total, or a severity L1-L4.")
    escalations: int = Field(description="Escalation records created by evaluated requests (each record once).")
    rate: float | None = Field(description="escalations / evaluated requests; null without any.")
    target: float = Field(description="Rate to stay under.")
    alert_above: float = Field(description="Rate above which this is an alert.")
    status: Literal["ok", "above target", "ALERT", "no data"] = Field(description="Against target and alert.")


class ResolutionLine(BaseModel):
    name: str = Field(description="A severity (L1-L4) or a routing level name.")
    resolved: int = Field(description="Escalations created in the period that got an answer or a resolution.")
    median_seconds: float | None = Field(description="Median time to answer/resolution.")
    p90_seconds: float | None = Field(description="90th percentile time.")
    target_seconds: float | None = Field(description="The target, when the policy sets one.")
    within_target: float | None = Field(description="Share resolved within the target.")


class TrendPoint(BaseModel):
    start: str = Field(description="Bucket start (UTC).")
    decisions: int = Field(description="Decisions evaluated in the bucket.")
    escalations: int = Field(description="Decisions that escalated.")
    rate: float | None = Field(description="escalations / decisions.")
    by_severity: dict[str, float | None] = Field(description="Rate per severity.")


class Report(BaseModel):
    """One period's escalation report."""

    period: Period = Field(description="daily, weekly or monthly.")
    start: str = Field(description="Inclusive start (UTC).")
    end: str = Field(description="Exclusive end (UTC).")
    decisions: int = Field(description="Decisions evaluated in the period.")
    rates: list[RateLine] = Field(description="Total and per-severity rates with their status.")
    alerts: list[str] = Field(description="One line per rate above its alert threshold.")
    repeats: int = Field(default=0, description="Calls answered with an escalation already open (not counted as escalations).")
    reasked: int = Field(default=0, description="Calls answered with an earlier answer (not counted as escalations).")
    auto_answered: int = Field(default=0, description="Calls answered from a person's learned preference (not counted "
                                                      "as escalations).")
    refusals: int = Field(default=0, description="Calls on a locked or handed-off task (stop/handoff; not counted).")
    records: int = Field(description="Escalation records created in the period (agent, manual, pipeline).")
    by_source: dict[str, int] = Field(description="Records by source.")
    by_type: dict[str, int] = Field(description="Records by type.")
    by_reason: dict[str, int] = Field(description="Records by reason (top 15).")
    by_level: dict[str, int] = Field(description="Records by routing level.")
    resolution: list[ResolutionLine] = Field(description="Resolution time per severity and per routing level.")
    resolution_methods: dict[str, int] = Field(description="Resolved/closed records by method.")
    open_now: int = Field(description="Escalations still open at the end of the period.")
    blocked: list[dict[str, Any]] = Field(description="Blocked tasks (L3 unresolved past the fail-safe).")
    trend: list[TrendPoint] = Field(description="Rate over time.")
    actors: list[ActorLine] = Field(default_factory=list, description="Actor scores: decisions and score per actor.")
    replacements: list[ReplacementLine] = Field(default_factory=list,
                                                description="Suspensions that overlapped the period, with the replacement.")
    decision_quality: DecisionQuality | None = Field(
        default=None, description="Escalation rate against the adaptive target and its trend, response time, override "
                                  "rate, false-positive (unnecessary) and false-negative (missed) rates.")


def period_bounds(period: str, day: date) -> tuple[datetime, datetime]:
    if period not in PERIODS:
        raise InputError(f"unknown period {period!r}; use daily, weekly or monthly")
    midnight = datetime.combine(day, time(), tzinfo=timezone.utc)
    if period == "daily":
        return midnight, midnight + timedelta(days=1)
    if period == "weekly":  # the seven days ending with ``day`` (02-08 .. 02-14 for 02-14)
        return midnight - timedelta(days=6), midnight + timedelta(days=1)
    first = midnight.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def _trend_buckets(period: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    step, count = {"daily": (timedelta(days=1), 14), "weekly": (timedelta(days=7), 8)}.get(period, (timedelta(days=1), 0))
    if period == "monthly":
        count = (end - start).days
        first = start
    else:
        first = end - step * count
    return [(first + step * i, first + step * (i + 1)) for i in range(count)]


def build_report(store: Store, policy: Policy, period: str = "daily", day: date | None = None) -> Report:
    ops = policy.operations
    day = day or store.clock().date()
    start, end = period_bounds(period, day)
    buckets = _trend_buckets(period, start, end)
    lo = min(start, buckets[0][0]) if buckets else start
    # One pass over the decision log, grouped by day (or hour) and severity, covers rates and trend.
    # The numerator counts escalation records created (one per record, however often the agent asks
    # again); repeats, re-asks and refusals on locked or handed-off tasks are counted on their own.
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for day_key, severity, kind, total in ((c.day, c.severity, c.outcome, c.total)
                                           for c in store.reports.decision_counts(iso(lo), iso(end))):
        per_day[day_key]["decisions"] += total
        per_day[day_key][kind] += total
        if kind == "created":
            per_day[day_key]["escalations"] += total
            per_day[day_key][severity or "L1"] += total

    def window(a: datetime, b: datetime) -> Counter[str]:
        total: Counter[str] = Counter()
        d = a
        while d < b:
            total.update(per_day.get(d.date().isoformat(), Counter()))
            d += timedelta(days=1)
        return total

    counts = window(start, end)
    decisions = counts["decisions"]
    rates = [_rate("total", counts["escalations"], decisions, ops.kpis.total)]
    rates += [_rate(s.value, counts[s.value], decisions, t) for s, t in sorted(ops.kpis.severity.items())]
    alerts = [f"{r.name} rate {r.rate:.2%} is above the alert threshold {r.alert_above:.2%}"
              for r in rates if r.status == "ALERT"]
    trend = []
    for a, b in buckets:
        c = window(a, b)
        trend.append(TrendPoint(start=iso(a), decisions=c["decisions"], escalations=c["escalations"],
                                rate=_div(c["escalations"], c["decisions"]),
                                by_severity={s.value: _div(c[s.value], c["decisions"]) for s in Severity}))
    rows: list[dict[str, Any]] = [dict(r) for r in store.reports.created(iso(start), iso(end))]
    level_names = {n: lvl.name for n, lvl in ops.levels.items()}
    resolution = _resolution(rows, "severity", {s.value: t.total_seconds() for s, t in ops.kpis.resolution.items()})
    resolution += _resolution(rows, "level", {n: lvl.response_target.total_seconds() for n, lvl in ops.levels.items()},
                              names=level_names)
    open_now = store.reports.open_before(iso(end))
    blocked: list[dict[str, Any]] = [dict(r) for r in store.reports.blocked()]
    return Report(
        period=period, start=iso(start), end=iso(end), decisions=decisions, rates=rates, alerts=alerts,
        repeats=counts["repeated"], reasked=counts["reasked"], refusals=counts["refused"],
        auto_answered=counts["auto_answered"],
        records=len(rows), by_source=_count(rows, "source"), by_type=_count(rows, "type"),
        by_reason=dict(Counter(r["reason"] or "(none)" for r in rows).most_common(15)),
        by_level={level_names.get(k, str(k)): v for k, v in Counter(r["level"] for r in rows).most_common()},
        resolution=resolution,
        resolution_methods=_count([r for r in rows if r["status"] in ("resolved", "closed")], "resolution_method"),
        open_now=open_now, blocked=blocked, trend=trend,
        actors=actor_lines(store, iso(start), iso(end)), replacements=replacement_lines(store, iso(start), iso(end)),
        decision_quality=decision_quality(store, iso(start), iso(end), rate=rates[0].rate, records=counts["escalations"],
                                          trend_rates=[p.rate for p in trend], target=policy.decisions.adaptive.target_rate),
    )


def _div(a: int, b: int) -> float | None:
    return a / b if b else None


def _rate(name: str, escalations: int, decisions: int, target: Any) -> RateLine:
    rate = _div(escalations, decisions)
    if rate is None:
        status = "no data"
    elif rate > target.alert:
        status = "ALERT"
    elif rate >= target.target:
        status = "above target"
    else:
        status = "ok"
    return RateLine(name=name, escalations=escalations, rate=rate, target=target.target,
                    alert_above=target.alert, status=status)


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {str(k or "(none)"): v for k, v in Counter(r[key] for r in rows).most_common()}


def _resolution(rows: list[dict[str, Any]], key: str, targets: dict[Any, float],
                names: dict[Any, str] | None = None) -> list[ResolutionLine]:
    times: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        if r["done_at"]:
            times[r[key]].append((parse_iso(r["done_at"]) - parse_iso(r["created_at"])).total_seconds())
    lines = []
    for k in sorted(set(times) | set(targets), key=str):
        values = sorted(times.get(k, []))
        target = targets.get(k)
        lines.append(ResolutionLine(
            name=(names or {}).get(k, str(k)), resolved=len(values),
            median_seconds=statistics.median(values) if values else None,
            p90_seconds=values[min(len(values) - 1, int(0.9 * len(values)))] if values else None,
            target_seconds=target,
            within_target=(sum(v <= target for v in values) / len(values)) if values and target else None))
    return lines


