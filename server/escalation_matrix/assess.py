"""Decision assessment: the criticality of a request from weighted factors of
its structured context, its decision type, strategic vs tactical, a one-line impact analysis, and
whether a proceed decision is confident enough for the agent to act alone.

Pure functions of the request, its context, its classification and policies/decisions.yaml:
nothing is stored, nothing is loaded."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable

from .conditions import holds
from .decisions_policy import DECISION_TYPES, Autonomy, DecisionsFile, Signal
from .models import Classification, DecisionAssessment, EscalationType

# What to check, per type the classifier found plausible, before acting alone on a request.
CHECKS: dict[EscalationType, str] = {
    EscalationType.clarification: "that the request says clearly what to do and what to focus on",
    EscalationType.conflict: "that no two instructions contradict each other",
    EscalationType.context: "that you have every fact the task needs (nothing assumed)",
    EscalationType.decision: "that no choice here needs the person's judgment",
    EscalationType.compliance: "that no regulated area, personal data or legal exposure is involved",
    EscalationType.scope: "that the action is within what you are allowed to do",
    EscalationType.safety: "that nothing here is sensitive, harmful or a sign of distress",
    EscalationType.technical: "that your tools can really do this",
}
OVERRIDES = ("criticality", "low_confidence", "unusual_pattern")  # decided_by of a classification the decision policy escalated
PLAUSIBLE = 0.05  # a type at least this probable is worth checking


@lru_cache(maxsize=512)
def _words(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    if not keywords:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b", re.IGNORECASE)


def _mentions(text: str, keywords: Iterable[str]) -> bool:
    pattern = _words(tuple(keywords))
    return pattern is not None and pattern.search(text) is not None


def decision_type(request: str, context: dict[str, Any], decisions: DecisionsFile) -> str:
    given = str(context.get("decision_type") or "").strip().lower().replace(" ", "_")
    if given in DECISION_TYPES:
        return given
    for name, keywords in decisions.types.items():
        if _mentions(request, keywords):
            return name
    return "other"


def _holds(signal: Signal, request: str, context: dict[str, Any], dtype: str) -> bool:
    return (dtype in signal.decision_types or _mentions(request, signal.keywords)
            or any(holds(c, context) for c in signal.when))


def _amount(names: list[str], context: dict[str, Any]) -> float | None:
    for name in names:
        value = context.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def criticality(request: str, context: dict[str, Any], decisions: DecisionsFile,
                dtype: str) -> tuple[float, list[str]]:
    """The weighted average of the factors that hold (the policy's default when none does), and their names."""
    total = weights = 0.0
    fired: list[str] = []
    for factor in decisions.criticality.factors:
        score: float | None = None
        amount = _amount(factor.amount, context)
        if amount is not None and amount > 0:
            score = min(amount / factor.full_at, 1.0)
        elif _holds(factor, request, context, dtype):
            score = factor.score
        if score is None:
            continue
        total += score * factor.weight
        weights += factor.weight
        fired.append(factor.name)
    if not weights:
        return decisions.criticality.default, []
    return round(min(total / weights, 1.0), 4), fired


def category(request: str, context: dict[str, Any], decisions: DecisionsFile,
             dtype: str) -> tuple[str, list[str]]:
    cat = decisions.category
    strategic = [s for s in cat.strategic if _holds(s, request, context, dtype)]
    tactical = [s for s in cat.tactical if _holds(s, request, context, dtype)]
    s_score, t_score = sum(s.weight for s in strategic), sum(s.weight for s in tactical)
    if s_score > t_score * cat.ratio:
        name = "strategic"
    elif t_score > s_score * cat.ratio or not (s_score or t_score):
        name = "tactical"  # nothing strategic about it: a routine, local decision
    else:
        name = "mixed"
    return name, [s.name for s in strategic] + [t.name for t in tactical]


def assess(request: str, context: dict[str, Any] | None, decisions: DecisionsFile) -> DecisionAssessment:
    """The assessment of one request (without the confidence part: see ``with_confidence``)."""
    ctx = dict(context or {})
    dtype = decision_type(request, ctx, decisions)
    score, factors = criticality(request, ctx, decisions, dtype)
    cat, indicators = category(request, ctx, decisions, dtype)
    critical = score > decisions.criticality.escalate_above
    return DecisionAssessment(criticality=score, critical=critical, factors=factors, decision_type=dtype,
                              category=cat, indicators=indicators,
                              impact=impact(dtype, cat, score, factors, indicators, critical, ctx))


def impact(dtype: str, cat: str, score: float, factors: list[str], indicators: list[str], critical: bool,
           context: dict[str, Any]) -> str:
    kind = "" if dtype == "other" else " " + dtype.replace("_", " ")
    why = ", ".join(factors) if factors else "no risk factor in the context"
    undo = " It cannot be undone." if context.get("reversible") is False else ""
    signs = f" ({', '.join(indicators)})" if indicators else ""
    verdict = " Critical: a person must decide." if critical else ""
    return f"A {cat}{kind} decision{signs}; criticality {score:.2f} from {why}.{undo}{verdict}"


def with_confidence(a: DecisionAssessment, c: Classification, autonomy: Autonomy) -> DecisionAssessment:
    """For a proceed decision: the calibrated probability that nothing needs a person, and when it
    is below the policy's minimum, the note and what to check. An escalation is left as it is."""
    if c.type is not EscalationType.none:
        return a
    p_none = c.scores.get(EscalationType.none.value, c.confidence) if c.decided_by != "rule" else c.confidence
    p_none = round(min(max(float(p_none), 0.0), 1.0), 4)
    if not autonomy.enabled or p_none >= autonomy.min_confidence:
        return a.model_copy(update={"autonomy": p_none})
    return a.model_copy(update={"autonomy": p_none, "low_confidence": True, "check": checks(c)})


def stored(a: DecisionAssessment | None, c: Classification) -> dict[str, Any] | None:
    """What an escalation record keeps of its assessment: every field but ``summary`` (worded from the
    request and its context, which the record keeps already), and ``rule``, what made it escalate:
    the decision policy (criticality, low_confidence, unusual_pattern), the policy rule that decided
    (the highest-priority one that fired, e.g. security_change), else the classifier."""
    if a is None:
        return None
    if c.decided_by in OVERRIDES:
        rule = c.decided_by
    elif c.rule and "rule" in c.decided_by:
        rule = c.rule
    elif c.rules and "rule" in c.decided_by:
        rule = c.rules[0].name
    else:
        rule = "classifier"
    return {**a.model_dump(mode="json", exclude={"summary"}), "rule": rule}


def checks(c: Classification) -> list[str]:
    """The plausible escalation types, most probable first, as things to check."""
    ranked = sorted(((float(p), t) for t, p in c.scores.items() if t != EscalationType.none.value), reverse=True)
    found = [f"{t} ({p:.2f}): check {CHECKS[EscalationType(t)]}" for p, t in ranked
             if p >= PLAUSIBLE and EscalationType(t) in CHECKS]
    if not found and ranked:
        p, t = ranked[0]
        found = [f"{t} ({p:.2f}): check {CHECKS.get(EscalationType(t), 'the request once more')}"]
    return found[:3]


def most_likely_escalation(c: Classification) -> EscalationType:
    """The escalation type the classifier found most probable (for a low-confidence escalation)."""
    ranked = sorted(((float(p), t) for t, p in c.scores.items()
                     if t not in (EscalationType.none.value, EscalationType.pattern.value)), reverse=True)
    return EscalationType(ranked[0][1]) if ranked else EscalationType.clarification
