"""Automatic escalation of pipeline items: an item that reaches the iteration limit,
fails N times in a row, hits a data-quality or system error, or keeps a low confidence after
several iterations is escalated once; later reports on the same item return the open escalation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from ..errors import InputError
from ..store import OPEN_STATUSES, Store
from .records import Operations

if TYPE_CHECKING:
    from ..loader import Policy

ErrorKind = Literal["data-quality", "system"]
MAX_COUNT = 10**9
MAX_DETAILS = 4000


class ItemReport(BaseModel):
    """What a pipeline says about one item after an iteration."""

    item_id: str = Field(min_length=1, max_length=200, description="The item being processed (e.g. a brand id).")
    iterations: int = Field(ge=0, le=MAX_COUNT, description="Feedback iterations so far.")
    failures: int = Field(default=0, ge=0, le=MAX_COUNT, description="Consecutive processing failures so far.")
    confidence: float | None = Field(default=None, ge=0, le=1, description="Latest confidence score, 0-1.")
    error: ErrorKind | None = Field(default=None, description="data-quality or system when the iteration hit one.")
    details: str | None = Field(default=None, max_length=MAX_DETAILS, description="Free text for the person who picks it up.")

    @field_validator("item_id", "details")
    @classmethod
    def _text(cls, value: str | None, info: Any) -> str | None:
        from ..guard_results import valid_unicode

        if value is None:
            return None
        cleaned = valid_unicode(" ".join(value.split()), info.field_name)
        if info.field_name == "item_id" and not cleaned:
            raise ValueError("item_id is empty; pass the id of the item being processed")
        return cleaned or None


class ItemOutcome(BaseModel):
    """Whether the item was escalated, and why."""

    item_id: str = Field(description="The item reported.")
    escalated: bool = Field(description="True when an escalation exists for the item now.")
    trigger: str | None = Field(default=None, description="iteration_limit, consecutive_failures, data_quality, "
                                                          "system_error or low_confidence.")
    escalation_id: str | None = Field(default=None, description="Id of the escalation, e.g. ESC-2026-014.")
    repeated: bool = Field(default=False, description="True when the item already had an open escalation.")
    reason: str = Field(description="One sentence: why it escalated or why it may continue.")


Trigger = Literal["iteration_limit", "consecutive_failures", "data_quality", "system_error", "low_confidence"]


def check(report: ItemReport, policy: Policy) -> tuple[Trigger, str] | None:
    """(trigger, explanation) for the first limit the report breaks, checked in this order: a reported
    error (data quality, then system), the iteration limit, consecutive failures, low confidence."""
    limits = policy.operations.pipeline
    if report.error == "data-quality":
        return "data_quality", "a critical data-quality error was reported"
    if report.error == "system":
        return "system_error", "a system error was reported"
    if report.iterations >= limits.iteration_limit:
        return "iteration_limit", f"{report.iterations} iterations reached the limit of {limits.iteration_limit}"
    if report.failures >= limits.consecutive_failures:
        return "consecutive_failures", f"{report.failures} consecutive failures (limit {limits.consecutive_failures})"
    if (report.confidence is not None and report.confidence < limits.min_confidence
            and report.iterations >= limits.low_confidence_after):
        return "low_confidence", (f"confidence {report.confidence:.2f} is below {limits.min_confidence} after "
                                  f"{report.iterations} iterations")
    return None


def validate(fields: dict[str, Any]) -> ItemReport:
    """An ``ItemReport`` from raw fields, or an InputError naming each field to fix."""
    try:
        return ItemReport.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'report'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid pipeline report: {problems}") from None


def report_item(store: Store, policy: Policy, report: ItemReport | dict[str, Any], by: str = "pipeline") -> ItemOutcome:
    """Record the item's state and escalate it when a limit is broken (once per open escalation)."""
    if isinstance(report, dict):
        report = validate(report)
    ops = Operations(store, policy)
    found = check(report, policy)
    with store.transaction() as conn:
        existing = store.pipeline.escalation_of(conn, report.item_id)
        if existing and store.escalation(existing, conn)["status"] not in OPEN_STATUSES:
            existing = None
        store.pipeline.save(conn, report.item_id, report.iterations, report.failures, report.confidence, report.error,
                            existing)
        def decided(outcome: str, escalation_id: str | None, severity: str | None = None) -> None:
            # every pipeline report is an evaluated request (KPI denominator)
            store.record_decision(conn, "report_item", "technical" if escalation_id else "none",
                                  "proceed" if outcome == "proceed" else "escalate", severity=severity,
                                  conversation_id="pipeline", task_id=report.item_id,
                                  escalation_id=escalation_id, outcome=outcome)

        if found is None:
            decided("proceed", None)
            return ItemOutcome(item_id=report.item_id, escalated=existing is not None, escalation_id=existing,
                               repeated=existing is not None, reason="within limits; continue processing")
        trigger, why = found
        if existing:
            decided("repeated", existing)
            return ItemOutcome(item_id=report.item_id, escalated=True, trigger=trigger, escalation_id=existing,
                               repeated=True, reason=f"{why}; already escalated as {existing}")
        spec = ops.ops.pipeline.triggers[trigger]
        details = "; ".join(filter(None, [f"Item {report.item_id}: {why}", report.details]))
        record = ops.create(spec.reason, level=spec.level, details=details, by=by, type="technical",
                            severity=spec.severity.value, conversation_id="pipeline", task_id=report.item_id,
                            source="pipeline")
        store.pipeline.set_escalation(conn, report.item_id, record["id"])
        decided("created", record["id"], spec.severity.value)
    return ItemOutcome(item_id=report.item_id, escalated=True, trigger=trigger, escalation_id=record["id"],
                       reason=f"{why}; escalated as {record['id']}")
