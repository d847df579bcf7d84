"""How the conversation guard words its answers: input checks and the ``EscalationResult`` built
from a classification or a stored escalation record, with the one-sentence instruction for the agent."""

from __future__ import annotations

from typing import Any, Literal, overload

from .errors import InputError
from .models import Action, Classification, DecisionAssessment, EscalationResult, EscalationType, Severity
from .policy import ConversationFile

MAX_ID_CHARS = 200
MAX_OPTION_CHARS = 500
MAX_CONTEXT_CHARS = 16_000  # the context as JSON
MAX_CONTEXT_DEPTH = 5
MAX_INT = 2**63 - 1  # what SQLite stores; larger numbers are not facts a rule compares

INSTRUCTIONS = {
    Severity.L1: "Say the phrase (or show the message) to the person once, wait for the answer, then pass it to "
                 "respond and continue; do not ask this again.",
    Severity.L2: "Send this message once and wait for the operator's answer before acting on this point.",
    Severity.L3: "Pause the task: this is routed to a specialist. Send the message once and wait for guidance.",
    Severity.L4: "Stop the task now and take no further action on it; a person must review it first.",
}
PROCEED = "Proceed with the task; nothing needs a person's input."
LOW_CONFIDENCE = ("Low confidence ({p:.2f}) that nothing here needs a person: before you act alone, check {what}; "
                  "if any of these is in doubt, call escalate.")
PROCEED_DEFAULT = "Do not ask: apply this default and continue - {default}"
REASKED = "This was already answered in this conversation ({id}); apply that answer and continue without asking again."
REPEATED = "You already raised this issue ({id}) and it is still open: do not ask again; wait for its answer."
# a match by meaning, not by the same words: the agent can tell a different issue worded alike
DIFFERS = (" It was matched by meaning to the earlier request \"{earlier}\": if yours asks for something else "
           "(another target, amount, permission, place or time), call again with new_issue: true instead.")
HANDOFF = "Stop working on this task: it has been handed to a person ({id}). Tell the user once, using the phrase."
LOCKED = "This task is locked by {id} until a person unlocks it: stop and take no action on it."
ANSWERED = "Apply this answer and continue the task now; do not ask for confirmation."
ANSWERED_LOCKED = "The answer is recorded, but the task stays locked until a person unlocks it: take no action on it."
OUT_OF_SCOPE = "Say the phrase and offer the alternatives; do not attempt the request as asked."
WAIT = ("This task is paused awaiting guidance on {id} (L3): take no action on it and raise nothing new "
        "until a person answers.")
NOTICE_REMINDER = ("{id} is still unanswered after {age}: remind the person of it once, gently, without "
                   "asking anything new.")
NOTICE_GUIDANCE = "Task {task} is now awaiting guidance ({id}, raised to L3): pause it until a person answers."
NOTICE_BLOCKED = "Task {task} is blocked ({id} unresolved at L3): keep it paused; it is on the blocked-tasks report."


# --- input checks: every one runs before anything is written ---
@overload
def identifier(value: Any, name: str, *, required: Literal[True] = ...) -> str: ...
@overload
def identifier(value: Any, name: str, *, required: bool) -> str | None: ...
def identifier(value: Any, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be a non-empty string (for example 'chat-42')")
    if len(value) > MAX_ID_CHARS:
        raise InputError(f"{name} is {len(value)} characters long; use at most {MAX_ID_CHARS}")
    valid_unicode(value, name)
    return value.strip()


def valid_unicode(value: str, name: str) -> str:
    """Refuse unpaired surrogates (not text: they break the model's tokenizer and the database)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name} contains an unpaired surrogate ({value[exc.start]!a}) at position {exc.start}; "
                         "send valid Unicode text") from None
    return value


@overload
def text(value: Any, name: str, limit: int, *, required: Literal[True] = ...) -> str: ...
@overload
def text(value: Any, name: str, limit: int, *, required: bool) -> str | None: ...
def text(value: Any, name: str, limit: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > 4 * limit + 1000:  # before any work on a huge value
        raise InputError(f"{name} is {len(value)} characters long; shorten it to at most {limit}")
    cleaned = valid_unicode(" ".join(value.split()), name)
    if not cleaned:
        if not required:
            return None
        raise InputError(f"{name} is empty; pass the text of the {name}")
    if len(cleaned) > limit:
        raise InputError(f"{name} is {len(cleaned)} characters long; shorten it to at most {limit} "
                         "(quote only the part that needs a decision)")
    return cleaned


AGENT_TYPES = tuple(t for t in EscalationType if t not in (EscalationType.none, EscalationType.pattern))


def with_match(instruction: str, earlier: str | None, limit: int = 200) -> str:
    """``instruction``, plus, for a call matched by meaning to ``earlier`` words, what they were
    (cut at ``limit`` characters) and how to say the call is a new issue."""
    if earlier is None:
        return instruction
    shown = earlier if len(earlier) <= limit else earlier[: limit - 1] + "…"
    return instruction + DIFFERS.format(earlier=shown)


def flag(value: Any, name: str) -> bool:
    """An optional yes/no argument: true, false or absent (false)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, not {value!r}")
    return value


def agent_type(value: Any) -> EscalationType | None:
    """The type an agent may insist on: any of the matrix's types except pattern (the server
    raises that one itself when it hands a task to a person)."""
    if value is None:
        return None
    names = ", ".join(t.value for t in AGENT_TYPES)
    try:
        chosen = EscalationType(value)
    except ValueError:
        raise InputError(f"type {value!r} is not an escalation type; use one of {names}") from None
    if chosen not in AGENT_TYPES:
        raise InputError(f"type {chosen.value!r} cannot be chosen by the agent; use one of {names}")
    return chosen


def options_list(value: Any, settings: ConversationFile) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("options must be a list of strings, e.g. ['Follow the first', 'Follow the second']")
    if len(value) > settings.max_options:
        raise InputError(f"{len(value)} options given; offer at most {settings.max_options}")
    if any(len(v) > 4 * MAX_OPTION_CHARS for v in value):
        raise InputError(f"each option must be at most {MAX_OPTION_CHARS} characters")
    cleaned = [valid_unicode(" ".join(v.split()), "an option") for v in value]
    if any(not v for v in cleaned):
        raise InputError("options must not contain empty strings")
    if len(cleaned) > settings.max_options:
        raise InputError(f"{len(cleaned)} options given; offer at most {settings.max_options}")
    if any(len(v) > MAX_OPTION_CHARS for v in cleaned):
        raise InputError(f"each option must be at most {MAX_OPTION_CHARS} characters")
    return cleaned


def context_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("context must be an object of fields, e.g. {\"environment\": \"production\"}")
    _check_fact(value, "context", 0)
    import json

    size = len(json.dumps(value, ensure_ascii=False))
    if size > MAX_CONTEXT_CHARS:
        raise InputError(f"context is {size} characters as JSON; send at most {MAX_CONTEXT_CHARS} "
                         "(only the facts the policy rules read)")
    return dict(value)


def _check_fact(value: Any, where: str, depth: int) -> None:
    """JSON values only, numbers SQLite can store, valid text, at most MAX_CONTEXT_DEPTH levels."""
    if depth > MAX_CONTEXT_DEPTH:
        raise InputError(f"{where} is nested deeper than {MAX_CONTEXT_DEPTH} levels; flatten the context")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise InputError(f"{where} is a number with {len(str(abs(value)))} digits; use a value between "
                             f"-{MAX_INT} and {MAX_INT}")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{where} must be a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_CONTEXT_CHARS:
            raise InputError(f"{where} is {len(value)} characters long; send at most {MAX_CONTEXT_CHARS}")
        valid_unicode(value, where)
        return
    if isinstance(value, dict):
        if len(value) > 200:
            raise InputError(f"{where} has {len(value)} fields; send at most 200")
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{where} has a key that is not a string: {key!r}")
            valid_unicode(key, f"a key of {where}")
            _check_fact(item, f"{where}.{key[:40]}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        if len(value) > 200:
            raise InputError(f"{where} has {len(value)} items; send at most 200")
        for index, item in enumerate(value):
            _check_fact(item, f"{where}[{index}]", depth + 1)
        return
    raise InputError(f"{where} must hold JSON values (text, numbers, true/false, lists, objects), "
                     f"got {type(value).__name__}")


# --- results ---
def action_for(severity: Severity | None) -> Action:
    if severity is None:
        return Action.proceed
    return Action.stop if severity is Severity.L4 else Action.escalate


def from_classification(c: Classification, **extra: Any) -> EscalationResult:
    """A result that records nothing: classify, and check_scope without a conversation."""
    severity = c.severity if c.escalate else None
    action = action_for(severity)  # proceed exactly when there is no severity
    if severity is None:
        instruction = PROCEED_DEFAULT.format(default=c.default) if c.default else PROCEED
    else:
        instruction = INSTRUCTIONS[severity]
    fields: dict[str, Any] = dict(
        action=action, type=c.type, severity=c.severity, trigger=c.trigger, phrase=c.phrase,
        message=c.message, options=list(c.options), default=c.default, instruction=instruction,
        confidence=c.confidence,
    )
    fields.update(extra)
    return EscalationResult(**fields)


def proceed(c: Classification, conversation_id: str | None, task_id: str | None, **extra: Any) -> EscalationResult:
    instruction = PROCEED_DEFAULT.format(default=c.default) if c.default else PROCEED
    trigger = c.trigger if c.type is EscalationType.none else "clear_request"
    return EscalationResult(
        action=Action.proceed, type=EscalationType.none, trigger=trigger, default=c.default,
        instruction=instruction, conversation_id=conversation_id, task_id=task_id, confidence=c.confidence,
        **extra,
    )


def from_record(record: dict[str, Any], action: Action, instruction: str, **extra: Any) -> EscalationResult:
    """A result that points at a stored escalation record."""
    fields: dict[str, Any] = dict(
        action=action, type=EscalationType(record["type"]), severity=Severity(record["severity"]),
        trigger=record["trigger"], escalation_id=record["id"], ref=record.get("ref"), status=record["status"],
        phrase=record["phrase"], message=record["message"], question=record["question"],
        options=list(record["options"] or []), conversation_id=record["conversation_id"],
        task_id=record["task_id"], instruction=instruction, locale=record.get("locale"),
    )
    fields.update(extra)
    return EscalationResult(**fields)


def with_decision(result: EscalationResult, assessment: DecisionAssessment) -> EscalationResult:
    """``result`` with the decision's assessment; a plain proceed below the confidence to act alone
    says so in its instruction (an earlier answer or a conventional default is applied as it is)."""
    update: dict[str, Any] = {"decision": assessment}
    plain = result.action is Action.proceed and result.answer is None and result.default is None
    if plain and assessment.low_confidence and assessment.autonomy is not None:
        what = "; ".join(c.split(": check ", 1)[-1] for c in assessment.check) or "the request once more"
        update["instruction"] = LOW_CONFIDENCE.format(p=assessment.autonomy, what=what)
    return result.model_copy(update=update)


def instruction_for(severity: Severity) -> str:
    return INSTRUCTIONS[severity]
