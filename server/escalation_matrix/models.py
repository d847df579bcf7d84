"""Core value types shared by the classifier, the conversation guard and every adapter."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EscalationType(str, Enum):
    """The nine escalation types of the matrix, plus ``none`` (proceed)."""

    clarification = "clarification"
    conflict = "conflict"
    context = "context"
    decision = "decision"
    compliance = "compliance"
    scope = "scope"
    safety = "safety"
    technical = "technical"
    pattern = "pattern"
    none = "none"


class Severity(str, Enum):
    """Severity protocol: L1 continue after answer, L2 wait, L3 route to specialist, L4 stop."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"

    @property
    def rank(self) -> int:
        return int(self.value[1])


class Action(str, Enum):
    """What the agent must do next."""

    proceed = "proceed"
    escalate = "escalate"
    handoff = "handoff"
    stop = "stop"
    wait = "wait"


class RuleMatch(BaseModel):
    """A policy rule that fired, and on what."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Rule name from the policy file.")
    type: EscalationType = Field(description="Escalation type the rule points to.")
    trigger: str = Field(description="Matrix trigger the rule points to.")
    severity: Severity | None = Field(default=None, description="Severity the rule forces, if any.")
    reason: str = Field(description="The rule's stated reason.")
    matched: list[str] = Field(default_factory=list, description="Keywords, patterns or conditions that matched.")
    priority: int = Field(default=0, description="The rule's priority: among escalating rules that fire together, "
                                                 "the highest decide.")


class ExemplarMatch(BaseModel):
    """One of the nearest exemplar utterances."""

    model_config = ConfigDict(frozen=True)

    type: EscalationType = Field(description="Type of the exemplar.")
    trigger: str = Field(description="Trigger of the exemplar.")
    text: str = Field(description="The exemplar utterance.")
    similarity: float = Field(description="Cosine similarity to the request.")
    file: str = Field(description="Exemplar file it comes from.")


class Classification(BaseModel):
    """The classifier's answer for one request: what it is, how severe, what to say, and why."""

    request: str = Field(description="The request text that was classified.")
    type: EscalationType = Field(description="Escalation type, or none to proceed.")
    trigger: str = Field(description="Matrix trigger (e.g. unclear_request); 'clear_request' for none.")
    severity: Severity | None = Field(description="L1-L4; null when the type is none.")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in the chosen type, 0-1.")
    scores: dict[str, float] = Field(description="Per-type scores (higher means more likely).")
    rules: list[RuleMatch] = Field(default_factory=list, description="Policy rules that matched.")
    exemplars: list[ExemplarMatch] = Field(default_factory=list, description="Nearest exemplars.")
    decided_by: str = Field(description="'rule', 'embedding' or 'rule+embedding': what decided the type.")
    rule: str | None = Field(default=None, description="The policy rule that set the trigger and severity (the "
                                                       "highest-priority escalating rule that fired), or the decision "
                                                       "policy that escalated (criticality, low_confidence, "
                                                       "unusual_pattern); null when no rule did.")
    phrase: str | None = Field(default=None, description="The standard escalation phrase (null for none).")
    message: str | None = Field(default=None, description="Rendered communication template (null for none).")
    options: list[str] = Field(default_factory=list, description="Options to offer the person.")
    default: str | None = Field(
        default=None, description="For minor preferences that proceed: the conventional default to apply."
    )

    @property
    def escalate(self) -> bool:
        return self.type is not EscalationType.none


def context_dict(context: dict[str, Any] | None) -> dict[str, Any]:
    """Normalise an optional structured context to a plain dict."""
    return dict(context or {})


class DecisionAssessment(BaseModel):
    """How important the decision behind a request is (policies/decisions.yaml), and whether the
    agent is confident enough to act alone."""

    criticality: float = Field(ge=0.0, le=1.0, description="Criticality 0-1: weighted average of the factors that hold.")
    critical: bool = Field(description="True when the criticality is above the policy's limit: it always escalates.")
    factors: list[str] = Field(default_factory=list, description="Criticality factors that hold, e.g. production.")
    decision_type: str = Field(description="deployment | architecture | data_change | batch | other.")
    category: str = Field(description="strategic | tactical | mixed.")
    indicators: list[str] = Field(default_factory=list, description="Strategic and tactical indicators that hold.")
    impact: str = Field(description="One-sentence impact analysis.")
    autonomy: float | None = Field(default=None, description="Calibrated probability that nothing needs a person "
                                                             "(proceed decisions only).")
    low_confidence: bool = Field(default=False, description="True when the agent proceeds below the confidence "
                                                            "needed to act alone: check `check` first.")
    check: list[str] = Field(default_factory=list, description="What to check before acting, when low_confidence.")
    summary: str | None = Field(default=None, description="The decision worded by its decision template "
                                                          "(phrases/<locale>/decisions/); '[missing: name]' marks a "
                                                          "fact the agent did not give.")
    unusual: str | None = Field(default=None, description="When the share of risky requests of this conversation, or "
                                                          "of the agent across its conversations, jumped against its "
                                                          "own history: which one, and by how much.")
    rule: str | None = Field(default=None, description="What decided it: the policy rule that set type and severity "
                                                       "(the highest-priority one that fired), or the decision policy "
                                                       "(criticality, low_confidence, unusual_pattern); null when the "
                                                       "classifier decided alone.")


class StructuredAnswer(BaseModel):
    """A person's answer as an action: what the agent does next follows from it."""

    action: str = Field(description="approve | reject | modify | delegate | defer | conditional.")
    change: str | None = Field(default=None, description="modify: the change to make before carrying it out.")
    to: str | None = Field(default=None, description="delegate: who decides instead.")
    until: str | None = Field(default=None, description="defer: until when (ISO time, UTC).")
    conditions: list[str] = Field(default_factory=list, description="conditional: the conditions of the approval.")
    note: str | None = Field(default=None, description="Free text the person added.")


class PreferenceUse(BaseModel):
    """The learned preference that answered a question instead of a person, and how to revoke it."""

    id: int = Field(description="The preference's id (revoke it with revoke_preference or "
                                "`escalation-matrix preferences revoke ID`).")
    scope: str = Field(description="person or organisation: whose preference it is.")
    scope_id: str = Field(description="The person's or organisation's name.")
    confidence: float = Field(description="Its confidence now (0-1), at or above the policy's threshold.")
    answers: int = Field(description="The person's agreeing answers it is based on (since their last change of mind).")
    answer: str = Field(description="The answer it gave.")
    revoke: str = Field(description="How the person stops it answering for them.")


class EscalationResult(BaseModel):
    """What every agent-facing tool (escalate, clarify, check_scope, respond, classify) returns."""

    action: Action = Field(description="proceed | escalate | handoff | stop | wait: what the agent must do now.")
    type: EscalationType = Field(description="Escalation type; none when proceeding.")
    severity: Severity | None = Field(default=None, description="L1-L4; null when proceeding.")
    trigger: str = Field(description="Matrix trigger, e.g. unclear_request.")
    escalation_id: str | None = Field(default=None, description="Id like ESC-2026-001; null if nothing escalated.")
    ref: str | None = Field(default=None, description="The escalation's unguessable reference: name it by this in "
                                                      "respond (required over HTTP); null if nothing escalated.")
    status: str | None = Field(default=None, description="Status of the escalation record, if any.")
    repeated: bool = Field(default=False, description="True when an already-open escalation was returned.")
    queued: bool = Field(default=False, description="True when the escalation waits in a batch with other questions "
                                                    "for the same person (delivered together, soon).")
    batch_id: int | None = Field(default=None, description="The batch the escalation waits in or went out with.")
    phrase: str | None = Field(default=None, description="The standard phrase to say, verbatim.")
    message: str | None = Field(default=None, description="The rendered standard escalation message (markdown).")
    question: str | None = Field(default=None, description="The question put to the person.")
    options: list[str] = Field(default_factory=list, description="Options offered to the person.")
    answer: str | None = Field(default=None, description="The person's answer to apply, when proceeding after one.")
    matched_request: str | None = Field(
        default=None, description="When this call was taken as an earlier escalation's issue (answered or still open) "
                                  "worded differently: that escalation's request or question. If this call asks "
                                  "for something else, call again with new_issue: true.")
    default: str | None = Field(default=None, description="Conventional default to apply for a minor preference.")
    in_scope: bool | None = Field(default=None, description="check_scope only: whether the request is in scope.")
    instruction: str = Field(description="One sentence telling the agent exactly what to do next.")
    conversation_id: str | None = Field(default=None, description="Conversation the call belongs to.")
    task_id: str | None = Field(default=None, description="Task inside the conversation.")
    confidence: float | None = Field(default=None, description="Classifier confidence, 0-1.")
    notices: list[str] = Field(
        default_factory=list, description="News about this conversation's earlier escalations since your last call "
                                          "(a reminder is due, a task awaits guidance); each is said once.")
    classified_as: EscalationType | None = Field(
        default=None, description="escalate with a type only: the classifier's own type when it differs from "
                                  "the type you gave (yours was used; 'none' means it saw no need to escalate).")
    response: StructuredAnswer | None = Field(
        default=None, description="respond with an action: the person's structured answer the instruction follows from.")
    decision: DecisionAssessment | None = Field(
        default=None, description="The decision's criticality, type, strategic/tactical category, impact and the "
                                  "confidence to act alone.")
    locale: str | None = Field(
        default=None, description="Language of phrase, message, question and options (e.g. 'en', 'de'); an "
                                  "existing escalation keeps the language it was raised in.")
    preference: PreferenceUse | None = Field(
        default=None, description="Set when a learned preference of the person answered instead of asking them: "
                                  "which one, its confidence and how to revoke it.")
