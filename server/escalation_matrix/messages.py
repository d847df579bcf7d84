"""Build the standard phrase and the communication message (title, question, options, details)
of an escalation.

The variables a phrase, the Context line and a message template see are named here once
(``phrase_variables``, ``message_variables``): the tools, the renderers and the policy check all
build them through these two functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import EscalationType, Severity
from .phrases import PhraseBook
from .policy import MatrixFile


def phrase_variables(
    etype: EscalationType,
    type_label: str,
    trigger: str,
    severity: Severity | None,
    request: str = "",
    *,
    missing: str | None = None,
    question: str | None = None,
    options: list[str] | None = None,
) -> dict[str, Any]:
    """What a standard phrase and the Context line may use."""
    return {
        "request": request, "type": etype.value, "type_label": type_label, "trigger": trigger,
        "severity": severity.value if severity else "", "missing": missing or "", "question": question or "",
        "options": options or [],
    }


def message_variables(
    etype: EscalationType,
    type_label: str,
    trigger: str,
    severity: Severity | None,
    *,
    request: str,
    phrase: str,
    issue: str,
    context: str,
    question: str,
    options: list[str],
) -> dict[str, Any]:
    """What a message template (message.<fmt>.j2) may use; a rendered record adds its
    ``escalation_id`` and ``action``."""
    return {
        "type": etype.value, "type_label": type_label, "trigger": trigger,
        "severity": severity.value if severity else "", "request": request, "phrase": phrase,
        "issue": issue, "context": context, "question": question, "options": list(options),
    }


@dataclass(frozen=True)
class EscalationText:
    """Everything a renderer needs, in one place, so every format carries the same data."""

    type: EscalationType
    type_label: str
    trigger: str
    severity: Severity
    request: str
    phrase: str
    issue: str
    context: str
    question: str
    options: list[str] = field(default_factory=list)

    def variables(self) -> dict[str, Any]:
        return message_variables(self.type, self.type_label, self.trigger, self.severity, request=self.request,
                                 phrase=self.phrase, issue=self.issue, context=self.context, question=self.question,
                                 options=self.options)


def escalation_text(
    matrix: MatrixFile,
    phrases: PhraseBook,
    etype: EscalationType,
    trigger: str,
    severity: Severity,
    request: str,
    *,
    question: str | None = None,
    options: list[str] | None = None,
    missing: str | None = None,
    details: str | None = None,
) -> EscalationText:
    """Compose the phrase and message fields. Caller-given question/options/details win over the
    policy defaults; the phrase itself always comes from the phrase file."""
    mtype = matrix.types[etype]
    spec = mtype.triggers[trigger]
    base = phrase_variables(etype, mtype.label, trigger, severity, request, missing=missing, question=question,
                            options=options)
    phrase = phrases.phrase(spec.phrase or "", **base)
    chosen = list(options) if options else phrases.default_options(etype)
    return EscalationText(
        type=etype, type_label=mtype.label, trigger=trigger, severity=severity, request=request,
        phrase=phrase, issue=spec.reason, context=details or phrases.context_line(**base),
        question=question or phrase, options=chosen,
    )
