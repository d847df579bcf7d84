"""The JSON card: the escalation as data for a chat frontend (type, severity, phrase, question,
options as choices, escalation id, response target), and its published JSON Schema.

The card is data, not markup: every string in it is plain text that a frontend must insert as
text (``textContent``), never as HTML. ``python -m escalation_matrix.card`` prints the schema that
is published as ``schemas/card.schema.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field

from .durations import duration_label
from .models import Action, DecisionAssessment, EscalationType, Severity

if TYPE_CHECKING:
    from .ops_policy import OperationsFile

CARD_VERSION: Literal["1"] = "1"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "card.schema.json"
SCHEMA_ID = "urn:escalation-matrix:schema:card:1"

# Response-time target per severity when the policy sets none (the response-time KPIs
# and the fail-safe stages): L1 resolved within 2 min, L2 within 15 min, L3 within 24 h (then the blocked-tasks
# report), L4 needs a person immediately. policies/operations.yaml overrides them: its
# kpis.resolution first, else the longest fail-safe timer of that severity.
DEFAULT_RESPONSE_TARGETS: dict[Severity, int] = {
    Severity.L1: 2 * 60,
    Severity.L2: 15 * 60,
    Severity.L3: 24 * 3600,
    Severity.L4: 0,
}


class Choice(BaseModel):
    """One option the person can pick; a frontend shows it as a button."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable id within the card: option-1, option-2, ...", pattern=r"^option-[0-9]+$")
    index: int = Field(ge=1, description="1-based position, as in 'Option 1'.")
    label: str = Field(description="The option text, plain text (insert with textContent).")
    answer: str = Field(description="The text to send back as the answer (respond tool) when picked.")


class ResponseTarget(BaseModel):
    """How quickly a person should answer an escalation of this severity."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(description="The severity the target belongs to.")
    seconds: int = Field(ge=0, description="Target time to a response, in seconds.")
    label: str = Field(description="The target for people, e.g. '2 min', '24 h'.")
    source: Literal["policy", "default"] = Field(
        description="'policy' when policies/operations.yaml sets it, else the documented default."
    )


class EscalationCard(BaseModel):
    """An escalation (or a proceed decision) as a chat frontend renders it."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["1"] = Field(default=CARD_VERSION, description="Card format version.")
    action: Action = Field(description="proceed | escalate | handoff | stop: what the agent does now.")
    type: EscalationType = Field(description="Escalation type; none when proceeding.")
    type_label: str = Field(description="Human label of the type, e.g. Clarification.")
    severity: Severity | None = Field(default=None, description="L1-L4; null when proceeding.")
    trigger: str = Field(description="Matrix trigger, e.g. unclear_request.")
    title: str = Field(description="Heading line, e.g. 'CLARIFICATION ESCALATION REQUIRED'.")
    phrase: str | None = Field(default=None, description="The standard phrase, verbatim.")
    issue: str | None = Field(default=None, description="One sentence: what the issue is.")
    context: str | None = Field(default=None, description="One sentence of background, when known.")
    question: str | None = Field(default=None, description="The question put to the person.")
    choices: list[Choice] = Field(default_factory=list, description="Options as buttons, in order.")
    escalation_id: str | None = Field(default=None, description="Record id like ESC-2026-001; null if none.")
    ref: str | None = Field(default=None, description="The escalation's unguessable reference: send it to respond "
                                                  "(required over HTTP); null if none.")
    status: str | None = Field(default=None, description="Status of the escalation record, if any.")
    repeated: bool = Field(default=False, description="True when an already-open escalation was returned.")
    response_target: ResponseTarget | None = Field(default=None, description="Response-time target; null when proceeding.")
    answer: str | None = Field(default=None, description="The earlier answer to apply, when proceeding after one.")
    default: str | None = Field(default=None, description="Conventional default, for a minor preference.")
    instruction: str | None = Field(default=None, description="What the agent was told to do next.")
    conversation_id: str | None = Field(default=None, description="Conversation the escalation belongs to.")
    task_id: str | None = Field(default=None, description="Task inside the conversation.")
    text: str = Field(description="The whole message as plain text (the txt template).")
    markdown: str = Field(description="The whole message as markdown (the md template).")
    decision: DecisionAssessment | None = Field(
        default=None, description="The decision's criticality, type, strategic/tactical category, impact analysis and "
                                  "confidence to act alone, when assessed.")


class BatchItem(BaseModel):
    """One question of a batch; a frontend shows it with a checkbox (approve selected)."""

    model_config = ConfigDict(extra="forbid")

    escalation_id: str = Field(description="Record id like ESC-2026-001.")
    type: EscalationType = Field(description="Escalation type.")
    severity: Severity = Field(description="L1 or L2 (batches hold nothing higher).")
    question: str | None = Field(default=None, description="The question put to the person.")
    task_id: str | None = Field(default=None, description="Task inside the conversation.")
    resource: str | None = Field(default=None, description="The resource the question concerns, when named.")
    status: str = Field(description="Status of the escalation record.")
    open: bool = Field(description="True while it waits for an answer (selectable).")


class BatchGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(default=None, description="Conversation of the grouped items' task.")
    task_id: str = Field(description="Task of the grouped items.")
    type: EscalationType = Field(description="Type of the grouped items.")
    resource: str | None = Field(default=None, description="Resource of the grouped items, when named.")
    items: list[str] = Field(description="Escalation ids, in the order asked.")


class BatchCard(BaseModel):
    """A batch of questions for one person, as a chat frontend renders it: the items grouped by
    task, type and resource, and the answers the person can give to them together."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["1"] = Field(default=CARD_VERSION, description="Card format version.")
    kind: Literal["batch"] = Field(default="batch", description="Always batch.")
    batch_id: int = Field(description="The batch's id.")
    person: str = Field(description="Whom the questions are for.")
    status: str = Field(description="open (collecting), delivered (waiting for answers) or answered.")
    title: str = Field(description="Heading line.")
    deliver_by: str = Field(description="When it is delivered at the latest (ISO time).")
    delivered_at: str | None = Field(default=None, description="When it was delivered, if it was.")
    items: list[BatchItem] = Field(description="Its questions, in the order asked.")
    groups: list[BatchGroup] = Field(description="Related items together: same task, type and resource.")
    actions: list[str] = Field(description="What the person can do now: approve_all, approve_selected, reject_all, "
                                           "review_individually; none when nothing is open.")
    text: str = Field(description="The batch as plain text.")
    markdown: str = Field(description="The batch as markdown.")


def response_targets(operations: OperationsFile | None = None) -> dict[Severity, ResponseTarget]:
    """The target of every severity: from ``policies/operations.yaml`` (a loaded policy's
    ``operations``) when it sets one, else the default. A loaded policy derives them once, as
    ``Policy.response_targets``; the card and the console read them from there."""
    targets = {}
    for severity in Severity:
        seconds, source = _policy_seconds(severity, operations), "policy"
        if seconds is None:
            seconds, source = DEFAULT_RESPONSE_TARGETS[severity], "default"
        targets[severity] = ResponseTarget(severity=severity, seconds=seconds, label=duration_label(seconds),
                                           source=source)
    return targets


@overload
def response_target(severity: Severity, operations: OperationsFile | None = None) -> ResponseTarget: ...
@overload
def response_target(severity: None, operations: OperationsFile | None = None) -> None: ...
def response_target(severity: Severity | None, operations: OperationsFile | None = None) -> ResponseTarget | None:
    """The target for ``severity`` (none without one); see ``response_targets``."""
    return response_targets(operations)[severity] if severity is not None else None


def _policy_seconds(severity: Severity, operations: OperationsFile | None) -> int | None:
    """kpis.resolution[severity], else the longest fail-safe timer watching that severity."""
    if operations is None:
        return None
    resolution = operations.kpis.resolution
    if severity in resolution:
        return int(resolution[severity].total_seconds())
    timers = [fs.after for fs in operations.failsafes.root.values() if fs.severity is severity]
    return int(max(timers).total_seconds()) if timers else None


def card_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) published as ``schemas/card.schema.json``."""
    schema = EscalationCard.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(card_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # regenerate: python -m escalation_matrix.card > .../schemas/card.schema.json
    import sys

    sys.stdout.write(schema_text())
