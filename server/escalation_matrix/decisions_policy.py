"""policies/decisions.yaml as a strict model: how a structured decision is assessed (criticality
factors and their weights, decision types, strategic and tactical indicators), the confidence an
agent needs to act alone, and the adaptive escalation target. Every value is policy, not code."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, model_validator

from .models import EscalationType, Severity
from .policy_conditions import Condition
from .strict import Strict

DECISION_TYPES = ("deployment", "architecture", "data_change", "batch", "other")
DecisionType = Literal["deployment", "architecture", "data_change", "batch", "other"]


class Signal(Strict):
    """Something that holds or not for one decision: any of its conditions on the context, a
    keyword of the request, or one of the decision types."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Name shown in the result (lowercase, underscores).")
    weight: float = Field(gt=0, le=1, description="How much it counts when it holds.")
    when: list[Condition] = Field(default_factory=list, description="Context conditions; any one that holds fires it.")
    keywords: list[str] = Field(default_factory=list, description="Whole words of the request; any one fires it.")
    decision_types: list[DecisionType] = Field(default_factory=list,
                                               description="Decision types that fire it by themselves.")

    @model_validator(mode="after")
    def _has_a_test(self) -> "Signal":
        if not (self.when or self.keywords or self.decision_types):
            raise ValueError(f"{self.name}: give at least one of when, keywords or decision_types")
        return self


class Factor(Signal):
    """A criticality factor: when it holds it adds ``score`` with its ``weight`` to the weighted
    average. An ``amount`` factor scores the first context field present, divided by ``full_at``."""

    score: float = Field(default=1.0, ge=0, le=1, description="Its criticality when it holds (0-1).")
    amount: list[str] = Field(default_factory=list,
                              description="Numeric context fields read in order (first present); the score is "
                                          "value / full_at, at most 1. The factor holds when one is above 0.")
    full_at: float = Field(default=10000, gt=0, description="amount: the value that scores 1.")

    @model_validator(mode="after")
    def _has_a_test(self) -> "Factor":
        if not (self.when or self.keywords or self.decision_types or self.amount):
            raise ValueError(f"{self.name}: give at least one of when, keywords, decision_types or amount")
        return self


class Criticality(Strict):
    factors: list[Factor] = Field(default_factory=list, description="Weighted factors, read from the context.")
    default: float = Field(default=0.3, ge=0, le=1, description="Criticality when no factor holds.")
    escalate_above: float = Field(default=0.9, ge=0, le=1,
                                  description="A criticality above this always escalates, whatever the classifier says.")
    escalate_as: EscalationType = Field(default=EscalationType.decision, description="Type a critical decision escalates as.")
    trigger: str = Field(default="requires_judgment", description="Trigger of that type in matrix.yaml.")
    severity: Severity | None = Field(default=None, description="Severity it forces; none: the trigger's default.")


class Category(Strict):
    strategic: list[Signal] = Field(default_factory=list, description="Indicators of a strategic decision.")
    tactical: list[Signal] = Field(default_factory=list, description="Indicators of a tactical decision.")
    ratio: float = Field(default=1.5, ge=1, description="One side wins when its score is this many times the other's.")


class Autonomy(Strict):
    enabled: bool = Field(default=True, description="Flag proceed decisions made with too little confidence.")
    min_confidence: float = Field(default=0.95, gt=0, le=1,
                                  description="The calibrated probability that nothing needs a person, at or above "
                                              "which the agent acts alone.")
    escalate: bool = Field(default=False,
                           description="false: a low-confidence proceed carries a note and what to check; true: it "
                                       "escalates instead.")


class Adaptive(Strict):
    enabled: bool = Field(default=True, description="Move per-type thresholds towards the target from outcomes.")
    target_rate: float = Field(default=0.05, gt=0, lt=1, description="Escalation rate aimed at (escalations / requests).")
    tolerance: float = Field(default=0.01, ge=0, lt=1, description="No change while the rate is this close to the target.")
    window: int = Field(default=500, ge=10, description="Requests per adjustment: the rate is measured over this many.")
    step: float = Field(default=0.02, gt=0, le=0.5, description="Largest change of one type's offset per adjustment.")
    max_offset: float = Field(default=0.3, gt=0, le=1, description="Offsets stay within +/- this.")
    min_outcomes: int = Field(default=5, ge=1,
                              description="Outcomes of a type needed before its offset moves (fewer: rate only).")
    floor: list[EscalationType] = Field(default_factory=lambda: [EscalationType.safety],
                                        description="Types whose threshold never moves (safety never escalates less).")


class Unusual(Strict):
    """The unusual pattern: a conversation, or the agent that owns it, whose share of risky
    requests (those that escalated, stopped or were handed off) jumps against its own history, on a
    request the classifier is unsure of."""

    enabled: bool = Field(default=True, description="Escalate unusual patterns.")
    scope: Literal["conversation", "agent", "both"] = Field(
        default="both", description="What is watched: each conversation, each agent across all its conversations, "
                                    "or both (the conversation is checked first).")
    recent: int = Field(default=10, ge=2, description="The conversation's latest evaluated requests compared.")
    min_history: int = Field(default=20, ge=1, description="Earlier requests needed before anything is unusual.")
    agent_recent: int = Field(default=50, ge=2, description="The agent's latest evaluated requests (all its "
                                                            "conversations) compared.")
    agent_min_history: int = Field(default=100, ge=1, description="The agent's earlier requests needed before "
                                                                  "its pattern is unusual.")
    jump: float = Field(default=0.3, gt=0, le=1, description="Rise of the risky share (recent - history) that is unusual.")
    max_confidence: float = Field(default=0.7, gt=0, le=1,
                                  description="Escalate only when the classifier's confidence is below this.")
    escalate_as: EscalationType = Field(default=EscalationType.decision, description="Type it escalates as.")
    trigger: str = Field(default="requires_judgment", description="Trigger of that type in matrix.yaml.")


class Preferences(Strict):
    """Preference learning: a person's (or an organisation's) answers to a recurring question become
    a preference whose confidence grows with consistent answers and fades with time; at or above
    ``threshold`` it answers that question for them (never safety, never L4, never a critical decision)."""

    enabled: bool = Field(default=True, description="Learn preferences from answers and let them answer.")
    threshold: float = Field(default=0.95, gt=0.5, le=1,
                             description="Confidence at or above which a preference answers a matching question.")
    cap: float = Field(default=0.99, gt=0.5, lt=1, description="Confidence never goes above this.")
    half_life_days: float = Field(default=30, gt=0,
                                  description="Days after which an answer counts half (recency decay).")
    consistency_boost: float = Field(default=0.2, ge=0, le=1,
                                     description="Extra confidence, as a fraction, for answers that all agree "
                                                 "(scaled down by the share of contradicting answers).")
    min_answers: int = Field(default=3, ge=1,
                             description="Agreeing answers needed, since the last change of mind, before it answers.")
    similarity: float = Field(default=0.8, gt=0, le=1,
                              description="Cosine at or above which a question is the preference's question (with "
                                          "the same lexical check as same-issue matching).")
    person_field: str = Field(default="person",
                              description="Context field naming the person the agent asks for (their preferences).")
    organisation_field: str = Field(default="organisation",
                                    description="Context field naming that person's organisation (its preferences).")
    types: list[EscalationType] = Field(
        default_factory=lambda: [EscalationType.clarification, EscalationType.context, EscalationType.decision,
                                 EscalationType.technical],
        description="Escalation types a preference may answer (never safety, pattern or none).")
    max_severity: Severity = Field(default=Severity.L3, description="Highest severity a preference may answer "
                                                                    "(L4 never).")


class Batching(Strict):
    """Batching: non-critical escalations for one person wait in a batch that goes out as one
    notification when it holds ``max_items`` or ``window_seconds`` after it opened; critical ones
    (criticality above escalate_above, a decision the policy escalated, safety, above
    ``max_severity``) are sent at once."""

    enabled: bool = Field(default=True, description="Batch non-critical escalations.")
    max_items: int = Field(default=5, ge=1, le=50, description="A batch is delivered at once when it holds this many.")
    window_seconds: float = Field(default=300, gt=0,
                                  description="A batch is delivered this many seconds after its first item at the "
                                              "latest.")
    types: list[EscalationType] = Field(
        default_factory=lambda: [EscalationType.clarification, EscalationType.conflict, EscalationType.context,
                                 EscalationType.decision, EscalationType.scope, EscalationType.technical],
        description="Escalation types that may wait in a batch (never safety, pattern or none).")
    max_severity: Severity = Field(default=Severity.L2, description="Highest severity that may wait (an L3 pauses "
                                                                    "its task, an L4 stops it: never batched).")
    person_field: str = Field(default="person", description="Context field naming the person asked; without it, "
                                                            "the escalation's assignee.")
    resource_field: str = Field(default="resource", description="Context field naming the resource concerned: items "
                                                                "of one task, type and resource are grouped.")


class DecisionsFile(Strict):
    types: dict[DecisionType, list[str]] = Field(
        default_factory=dict, description="Keywords (whole words) that identify each decision type; first match wins, "
                                          "in the order written. A context decision_type of one of these names wins.")
    criticality: Criticality = Field(default_factory=Criticality, description="The criticality score.")
    category: Category = Field(default_factory=Category, description="Strategic vs tactical classification.")
    autonomy: Autonomy = Field(default_factory=Autonomy, description="Confidence to act alone.")
    adaptive: Adaptive = Field(default_factory=Adaptive, description="Adaptive escalation target.")
    unusual: Unusual = Field(default_factory=Unusual, description="The unusual_pattern rule.")
    preferences: Preferences = Field(default_factory=Preferences, description="Preference learning.")
    batching: Batching = Field(default_factory=Batching, description="Batching of non-critical escalations.")


def check_decisions(folder: Path, decisions: DecisionsFile, context_fields: dict[str, str],
                    triggers: dict[EscalationType, list[str]]) -> list[tuple[str, str, str]]:
    """Cross-checks: every context field read is declared in conversation.yaml, the type and
    trigger of a critical decision exist in matrix.yaml."""
    where = str(folder / "decisions.yaml")
    found: list[tuple[str, str, str]] = []

    def field(name: str, key: str) -> None:
        if name not in context_fields:
            near = difflib.get_close_matches(name, context_fields, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            found.append((where, key, f"unknown context field {name!r}; {hint}declare it under context_fields in "
                                      "conversation.yaml"))

    crit = decisions.criticality
    for i, factor in enumerate(crit.factors):
        for j, cond in enumerate(factor.when):
            field(cond.field, f"criticality.factors.{i}.when.{j}.field")
        for j, name in enumerate(factor.amount):
            field(name, f"criticality.factors.{i}.amount.{j}")
    for side in ("strategic", "tactical"):
        for i, signal in enumerate(getattr(decisions.category, side)):
            for j, cond in enumerate(signal.when):
                field(cond.field, f"category.{side}.{i}.when.{j}.field")
    known = triggers.get(crit.escalate_as, [])
    if crit.escalate_as in (EscalationType.none, EscalationType.pattern):
        found.append((where, "criticality.escalate_as", "a critical decision escalates: use a type other than "
                                                         "none or pattern"))
    elif crit.trigger not in known:
        found.append((where, "criticality.trigger", f"{crit.trigger!r} is not a trigger of type "
                                                     f"{crit.escalate_as.value}; use one of {sorted(known)}"))
    odd = decisions.unusual
    if odd.escalate_as in (EscalationType.none, EscalationType.pattern):
        found.append((where, "unusual.escalate_as", "use a type other than none or pattern"))
    elif odd.trigger not in triggers.get(odd.escalate_as, []):
        found.append((where, "unusual.trigger", f"{odd.trigger!r} is not a trigger of type {odd.escalate_as.value}; "
                                                f"use one of {sorted(triggers.get(odd.escalate_as, []))}"))
    found += _check_preferences(where, decisions.preferences, field)
    found += _check_batching(where, decisions.batching, field)
    names = [f.name for f in crit.factors]
    for name in sorted({n for n in names if names.count(n) > 1}):
        found.append((where, "criticality.factors", f"factor name {name!r} is used twice; rename one"))
    return found


def _check_preferences(where: str, prefs: Preferences, field: Callable[[str, str], None]) -> list[tuple[str, str, str]]:
    """A preference answers for a person: it must be sure (threshold not above the cap), and it never
    answers what a person must always see (safety, a hand-off, an L4)."""
    found: list[tuple[str, str, str]] = []
    if prefs.threshold > prefs.cap:
        found.append((where, "preferences.threshold", f"threshold {prefs.threshold:g} is above cap {prefs.cap:g}: "
                                                      "no preference could ever answer; lower it or raise the cap"))
    banned = [t.value for t in prefs.types if t in (EscalationType.safety, EscalationType.pattern, EscalationType.none)]
    if banned:
        found.append((where, "preferences.types", f"a preference never answers {', '.join(banned)}; remove it"))
    if prefs.max_severity is Severity.L4:
        found.append((where, "preferences.max_severity", "an L4 stops the task for a person: use L3 or lower"))
    field(prefs.person_field, "preferences.person_field")
    field(prefs.organisation_field, "preferences.organisation_field")
    return found


MAX_WINDOW_SECONDS = 86400  # a question held longer than a day is no longer a batch but a forgotten one


def _check_batching(where: str, batching: Batching, field: Callable[[str, str], None]) -> list[tuple[str, str, str]]:
    """A batch holds back what can wait: never a safety concern, a hand-off or a task that pauses or
    stops for a person, and never for longer than a day."""
    found: list[tuple[str, str, str]] = []
    if batching.max_items < 2:
        found.append((where, "batching.max_items", "a batch of one item is no batch: use 2 or more, or set "
                                                   "enabled: false"))
    if batching.window_seconds > MAX_WINDOW_SECONDS:
        found.append((where, "batching.window_seconds", f"{batching.window_seconds:g} s holds a question back more "
                                                        f"than a day; use at most {MAX_WINDOW_SECONDS}"))
    banned = [t.value for t in batching.types
              if t in (EscalationType.safety, EscalationType.pattern, EscalationType.none)]
    if banned:
        found.append((where, "batching.types", f"{', '.join(banned)} is sent at once, never batched; remove it"))
    if batching.max_severity in (Severity.L3, Severity.L4):
        found.append((where, "batching.max_severity", f"an {batching.max_severity.value} pauses or stops its task "
                                                      "for a person: use L1 or L2"))
    field(batching.person_field, "batching.person_field")
    field(batching.resource_field, "batching.resource_field")
    return found
