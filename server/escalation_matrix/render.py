"""Render an escalation for people: markdown, plain text, HTML (escaped) and the
JSON card. Every format is filled from the same ``EscalationView`` and the text formats come from
the locale's message templates, so an edit to a phrase or template shows up everywhere.

Accepted inputs: an ``EscalationResult`` (what the agent tools and the MCP server return, as a
model or as its JSON dict), a ``Classification``, or an escalation record from the ``Store``."""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from typing import Any, Mapping

from .card import Choice, EscalationCard
from .errors import InputError, NotFoundError
from .loader import Policy, load_policy
from .messages import message_variables, phrase_variables
from .models import Action, Classification, DecisionAssessment, EscalationResult, EscalationType, Severity

FORMATS = ("md", "txt", "html", "json")


@dataclass(frozen=True)
class EscalationView:
    """The data every format carries."""

    action: Action
    type: EscalationType
    type_label: str
    trigger: str
    severity: Severity | None
    request: str | None = None
    phrase: str | None = None
    issue: str | None = None
    context: str | None = None
    question: str | None = None
    options: list[str] = field(default_factory=list)
    escalation_id: str | None = None
    ref: str | None = None
    status: str | None = None
    repeated: bool = False
    answer: str | None = None
    default: str | None = None
    instruction: str | None = None
    conversation_id: str | None = None
    task_id: str | None = None
    decision: DecisionAssessment | None = None

    @property
    def escalates(self) -> bool:
        """A person is (still) involved; a proceed after an answer renders as one line."""
        return self.action is not Action.proceed and self.type is not EscalationType.none

    def variables(self) -> dict[str, Any]:
        """Template variables: those of ``messages.EscalationText`` plus the record's."""
        return {**message_variables(self.type, self.type_label, self.trigger, self.severity, request=self.request or "",
                                    phrase=self.phrase or "", issue=self.issue or "", context=self.context or "",
                                    question=self.question or self.phrase or "", options=self.options),
                "escalation_id": self.escalation_id or "", "action": self.action.value}


@functools.lru_cache(maxsize=1)
def _default_policy() -> Policy:
    return load_policy()


def view(
    obj: EscalationResult | Classification | Mapping[str, Any],
    policy: Policy | None = None,
    *,
    request: str | None = None,
    details: str | None = None,
    store: Any = None,
) -> EscalationView:
    """Normalise a result, classification or store record. An ``EscalationResult`` carries no
    request text: pass ``store`` to read it (and the details) from the escalation record, or pass
    ``request``/``details`` yourself; without either the message has no Context line."""
    policy = policy or _default_policy()
    if isinstance(obj, Classification):
        action = Action.escalate if obj.escalate else Action.proceed
        fields: dict[str, Any] = {"action": action, "type": obj.type, "trigger": obj.trigger, "severity": obj.severity,
                  "request": obj.request, "phrase": obj.phrase, "options": list(obj.options), "default": obj.default}
    elif isinstance(obj, EscalationResult):
        fields = _from_result(obj)
    elif isinstance(obj, Mapping):
        fields = _from_record(obj) if "id" in obj and "created_at" in obj else _from_result(
            _validate_result(obj))
    else:
        raise InputError(f"cannot render a {type(obj).__name__}; pass an EscalationResult, a "
                         "Classification or an escalation record")
    if store is not None and fields.get("escalation_id") and not fields.get("request"):
        fields.update(_record_text(store, fields["escalation_id"]))
    if request and not fields.get("request"):
        fields["request"] = request
    if details and not fields.get("details"):
        fields["details"] = details
    return _complete(fields, policy)


def _record_text(store: Any, escalation_id: str) -> dict[str, Any]:
    try:
        record = store.escalation(escalation_id)
    except NotFoundError:
        return {}
    return {"request": record.get("request"), "details": record.get("details")}


def _validate_result(data: Mapping[str, Any]) -> EscalationResult:
    try:
        return EscalationResult.model_validate(dict(data))
    except ValueError as exc:
        raise InputError(f"not an escalation result or record: {exc}") from None


def _from_result(result: EscalationResult) -> dict[str, Any]:
    return {
        "action": result.action, "type": result.type, "trigger": result.trigger, "severity": result.severity,
        "phrase": result.phrase, "question": result.question, "options": list(result.options),
        "escalation_id": result.escalation_id, "ref": result.ref, "status": result.status, "repeated": result.repeated,
        "answer": result.answer, "default": result.default, "instruction": result.instruction,
        "conversation_id": result.conversation_id, "task_id": result.task_id,
        "request": getattr(result, "request", None), "details": getattr(result, "details", None),
        "decision": result.decision,
    }


def _from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    etype = EscalationType(record["type"])
    status = record.get("status")
    action = Action.stop if record.get("severity") == Severity.L4.value else (
        Action.handoff if etype is EscalationType.pattern else Action.escalate)
    if status in ("answered", "resolved", "closed"):
        action = Action.proceed
    options = record.get("options") or []
    return {
        "action": action, "type": etype, "trigger": record["trigger"],
        "severity": Severity(record["severity"]) if record.get("severity") else None,
        "request": record.get("request"), "details": record.get("details"), "phrase": record.get("phrase"),
        "question": record.get("question"), "options": list(options), "escalation_id": record["id"],
        "ref": record.get("ref"), "status": status, "answer": record.get("answer"), "conversation_id": record.get("conversation_id"),
        "task_id": record.get("task_id"),
    }


def _complete(fields: dict[str, Any], policy: Policy) -> EscalationView:
    """Fill what the object lacks from the policy: the type label, the Issue line (the trigger's
    reason), the phrase, and the Context line (the details, else the locale's context_line)."""
    etype: EscalationType = fields["type"]
    mtype = policy.matrix.types.get(etype)
    spec = mtype.triggers.get(fields["trigger"]) if mtype else None
    label = mtype.label if mtype else etype.value.title()
    request, details = fields.pop("request", None), fields.pop("details", None)
    base = phrase_variables(etype, label, fields["trigger"], fields.get("severity"), request or "",
                            question=fields.get("question"), options=fields.get("options"))
    if not fields.get("phrase") and spec and spec.phrase:
        fields["phrase"] = policy.phrases.phrase(spec.phrase, **base)
    context = details or (policy.phrases.context_line(**base) if request else None)
    issue = spec.reason if spec and etype is not EscalationType.none else None
    return EscalationView(type_label=label, request=request, issue=issue, context=context, **fields)


def title(v: EscalationView, policy: Policy | None = None) -> str:
    """The card's title in the policy's locale."""
    book = (policy or _default_policy()).phrases
    if v.escalates:
        return book.text("title", type_label=v.type_label, type=v.type.value)
    return book.text("proceed_title")


def _proceed_text(v: EscalationView, policy: Policy) -> str:
    """A proceed decision has no escalation template: one line with what to apply."""
    book = policy.phrases
    if v.answer:
        return book.text("proceed_answer", answer=v.answer)
    if v.default:
        return book.text("proceed_default", default=v.default)
    proceed = book.text("proceed")
    return f"{proceed} {v.instruction}" if v.instruction else proceed


def render_view(v: EscalationView, fmt: str, policy: Policy | None = None) -> str:
    policy = policy or _default_policy()
    if fmt == "json":
        return card_from_view(v, policy).model_dump_json(indent=2) + "\n"
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not v.escalates:
        text = _proceed_text(v, policy)
        if fmt == "html":
            return f'<div class="escalation escalation--proceed"><p>{html.escape(text)}</p></div>\n'
        return text + "\n"
    return policy.phrases.message(fmt, **v.variables())


def card_from_view(v: EscalationView, policy: Policy | None = None) -> EscalationCard:
    policy = policy or _default_policy()
    options = v.options if v.escalates else []  # nothing left to choose once proceeding
    choices = [Choice(id=f"option-{i}", index=i, label=o, answer=o) for i, o in enumerate(options, 1)]
    return EscalationCard(
        action=v.action, type=v.type, type_label=v.type_label, severity=v.severity, trigger=v.trigger,
        title=title(v, policy), phrase=v.phrase, issue=v.issue, context=v.context,
        question=(v.question or v.phrase) if v.escalates else v.question, choices=choices,
        escalation_id=v.escalation_id, ref=v.ref, status=v.status, repeated=v.repeated,
        response_target=policy.response_targets[v.severity] if v.escalates and v.severity else None,
        answer=v.answer, default=v.default, instruction=v.instruction, conversation_id=v.conversation_id,
        task_id=v.task_id, text=render_view(v, "txt", policy), markdown=render_view(v, "md", policy),
        decision=v.decision,
    )


def in_locale_of(obj: Any, policy: Policy | None = None) -> Policy:
    """The policy speaking the language ``obj`` was written in (a result's or record's ``locale``),
    so that a German escalation renders in German whatever the server's default."""
    policy = policy or _default_policy()
    locale = obj.get("locale") if isinstance(obj, Mapping) else getattr(obj, "locale", None)
    if locale and locale in policy.locales:
        return policy.in_locale(locale)
    return policy


def render(obj: Any, fmt: str = "md", policy: Policy | None = None, *, request: str | None = None,
           details: str | None = None, store: Any = None) -> str:
    """Render a result, classification or record as ``md``, ``txt``, ``html`` or ``json`` (the card),
    in the language it was written in."""
    policy = in_locale_of(obj, policy)
    return render_view(view(obj, policy, request=request, details=details, store=store), fmt, policy)


def card(obj: Any, policy: Policy | None = None, *, request: str | None = None,
         details: str | None = None, store: Any = None) -> EscalationCard:
    """The JSON card of a result, classification or record."""
    policy = in_locale_of(obj, policy)
    return card_from_view(view(obj, policy, request=request, details=details, store=store), policy)


BATCH_ACTIONS = ("approve_all", "approve_selected", "reject_all", "review_individually")


def batch_text(batch: Mapping[str, Any], fmt: str = "md") -> str:
    """A batch (as ``ops.batches.show`` returns it) as markdown or plain text: a heading, then each
    group of related questions, each question with its id and state."""
    if fmt not in ("md", "txt"):
        raise InputError(f"unknown format {fmt!r} for a batch; use md, txt or json")
    items = {i["id"]: i for i in batch["items"]}
    md = fmt == "md"
    head = f"Batch {batch['id']} for {batch['person']}: {batch['open_items']} of {len(items)} questions open ({batch['status']})"
    out = [f"## {head}" if md else head, ""]
    for g in batch["groups"]:
        label = f"{g['conversation_id']} task {g['task_id']} - {g['type']}" + (f" - {g['resource']}" if g.get("resource") else "")
        out.append(f"**{label}**" if md else label)
        for esc_id in g["items"]:
            item = items[esc_id]
            mark = ("[ ]" if item["open"] else "[x]") if md else ("open" if item["open"] else item["status"])
            question = item.get("question") or item.get("request") or ""
            out.append(f"- {mark} {esc_id} ({item['severity']}): {question}" if md else f"  {esc_id} {item['severity']} "
                       f"{mark}: {question}")
        out.append("")
    if batch["open_items"]:
        out.append(f"Approve all: `escalation-matrix batch approve {batch['id']}`; approve selected: "
                   f"`escalation-matrix batch approve {batch['id']} --items ID ...`")
    return "\n".join(out).rstrip() + "\n"


def batch_card(batch: Mapping[str, Any]) -> Any:
    """The JSON card of a batch (``card.BatchCard``)."""
    from .card import BatchCard

    items = [{"escalation_id": i["id"], "type": i["type"], "severity": i["severity"], "question": i.get("question"),
              "task_id": i.get("task_id"), "resource": i.get("resource"), "status": i["status"], "open": i["open"]}
             for i in batch["items"]]
    return BatchCard(batch_id=batch["id"], person=batch["person"], status=batch["status"],
                     title=f"{batch['open_items']} QUESTIONS FOR {str(batch['person']).upper()}",
                     deliver_by=batch["deliver_by"], delivered_at=batch.get("delivered_at"), items=items,
                     groups=batch["groups"], actions=list(BATCH_ACTIONS) if batch["open_items"] else [],
                     text=batch_text(batch, "txt"), markdown=batch_text(batch, "md"))
