"""Decision quality: the escalation rate against its target and its trend, the
time people take to respond, how often they override the agent's default, and the false-positive
(marked unnecessary) and false-negative (reported missed) rates of one report period."""

from __future__ import annotations

import json
import statistics
from typing import Literal

from pydantic import BaseModel, Field

from ..adaptive import agrees_with_default
from ..store import Store, parse_iso

Trend = Literal["increasing", "decreasing", "stable", "insufficient_data"]
MIN_TREND_POINTS = 3
STABLE_SLOPE = 0.001  # rate change per bucket below which the trend is stable (as the seed's metrics)


class DecisionQuality(BaseModel):
    escalation_rate: float | None = Field(description="Escalation records / evaluated requests in the period.")
    target_rate: float = Field(description="The adaptive target (policies/decisions.yaml).")
    deviation: float | None = Field(description="escalation_rate - target_rate.")
    trend: Trend = Field(description="Slope of the rate over the report's trend buckets.")
    trend_slope: float | None = Field(description="Rate change per bucket (least squares).")
    answered: int = Field(description="Escalations created in the period that a person answered.")
    response_median_seconds: float | None = Field(description="Median time from escalation to answer.")
    response_mean_seconds: float | None = Field(description="Mean time from escalation to answer.")
    override_rate: float | None = Field(description="Answers that rejected, modified or chose other than the agent's "
                                                    "default, over answers where the agent had a default or the "
                                                    "person answered with an action.")
    structured: dict[str, int] = Field(default_factory=dict, description="Structured answers by action.")
    necessary: int = Field(description="Escalations marked necessary.")
    unnecessary: int = Field(description="Escalations marked unnecessary (or answered with the default).")
    missed: int = Field(description="Missed escalations reported by operators.")
    false_positive_rate: float | None = Field(description="unnecessary / (necessary + unnecessary).")
    false_negative_rate: float | None = Field(description="missed / (escalation records + missed).")
    threshold_changes: int = Field(description="Adaptive threshold changes made in the period.")
    batches_delivered: int = Field(default=0, description="Batches of questions delivered in the period (one "
                                                          "notification each).")
    batched_items: int = Field(default=0, description="Escalations in those batches.")
    items_per_batch: float | None = Field(default=None, description="Batch efficiency: batched_items / "
                                                                    "batches_delivered.")
    notifications_saved: int = Field(default=0, description="Notifications not sent because items went out "
                                                            "together (batched_items - batches_delivered).")


def trend_of(rates: list[float | None]) -> tuple[Trend, float | None]:
    points = [(i, r) for i, r in enumerate(rates) if r is not None]
    if len(points) < MIN_TREND_POINTS:
        return "insufficient_data", None
    xs = [float(i) for i, _ in points]
    ys = [float(r) for _, r in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if abs(slope) < STABLE_SLOPE:
        return "stable", round(slope, 6)
    return ("increasing" if slope > 0 else "decreasing"), round(slope, 6)


def decision_quality(store: Store, start: str, end: str, *, rate: float | None, records: int,
                     trend_rates: list[float | None], target: float) -> DecisionQuality:
    answered = store.reports.answered(start, end)
    waits = [(parse_iso(r.answered_at) - parse_iso(r.created_at)).total_seconds() for r in answered]
    judged = overridden = 0
    structured: dict[str, int] = {}
    for r in answered:
        record = {"options": json.loads(r.options or "[]"), "context": json.loads(r.context or "{}")}
        action = r.response_action
        if action:
            structured[action] = structured.get(action, 0) + 1
        has_default = bool(record["context"].get("recommendation") or record["context"].get("default")
                           or record["options"])
        if action in ("reject", "modify"):
            judged, overridden = judged + 1, overridden + 1
        elif action in ("approve", "conditional"):
            judged += 1
        elif has_default:
            judged += 1
            overridden += not agrees_with_default(record, r.answer or "")
    kinds = store.reports.outcome_counts(start, end)
    necessary, unnecessary, missed = (int(kinds.get(k, 0)) for k in ("necessary", "unnecessary", "missed"))
    changes = store.reports.threshold_changes(start, end)
    trend, slope = trend_of(trend_rates)
    from .batches import efficiency

    batching = efficiency(store, start, end)
    return DecisionQuality(
        escalation_rate=rate, target_rate=target, deviation=None if rate is None else round(rate - target, 6),
        trend=trend, trend_slope=slope, answered=len(answered),
        response_median_seconds=statistics.median(waits) if waits else None,
        response_mean_seconds=round(statistics.fmean(waits), 3) if waits else None,
        override_rate=overridden / judged if judged else None, structured=structured,
        necessary=necessary, unnecessary=unnecessary, missed=missed,
        false_positive_rate=unnecessary / (necessary + unnecessary) if necessary + unnecessary else None,
        false_negative_rate=missed / (records + missed) if records + missed else None,
        threshold_changes=int(changes), **batching,
    )
