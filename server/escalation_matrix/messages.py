"""Build the standard phrase and the communication message (seed 002 §11) of an escalation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import EscalationType, Severity
from .phrases import PhraseBook
from .policy import MatrixFile


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
        return {
            "type": self.type.value, "type_label": self.type_label, "trigger": self.trigger,
            "severity": self.severity.value, "request": self.request, "phrase": self.phrase,
            "issue": self.issue, "context": self.context, "question": self.question,
            "options": list(self.options),
        }


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
    base = {
        "request": request, "type": etype.value, "type_label": mtype.label, "trigger": trigger,
        "severity": severity.value, "missing": missing or "", "question": question or "",
        "options": options or [],
    }
    phrase = phrases.phrase(spec.phrase or "", **base)
    chosen = list(options) if options else phrases.default_options(etype)
    return EscalationText(
        type=etype, type_label=mtype.label, trigger=trigger, severity=severity, request=request,
        phrase=phrase, issue=spec.reason, context=details or phrases.context_line(**base),
        question=question or phrase, options=chosen,
    )
