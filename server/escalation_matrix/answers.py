"""A person's answer to an escalation, and the unlock of an L4-locked task.

Both the conversation guard (the agent's ``respond`` tool) and the operator's records (CLI and
console) record answers through these functions, so this module sits below both of them."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from . import adaptive
from . import guard_results as out
from . import preferences as learning
from .access import check_agent_answer
from .decisions_policy import Preferences
from .errors import InputError, NotFoundError, StateError
from .models import Action, EscalationResult, EscalationType, Severity, StructuredAnswer
from .store import OPEN_STATUSES, Store, iso, parse_iso

DEFAULT_TASK = "default"


def _answerable(store: Store, conn: sqlite3.Connection, escalation_id: str, role: str,
                conversation_id: str | None) -> tuple[str, dict[str, Any]]:
    """The escalation's id and record (an agent may name it by its ref); an agent's answer is
    checked by ``access.check_agent_answer``."""
    escalation_id = store.resolve(escalation_id, conn)
    record = store.escalation(escalation_id, conn)
    if role == "agent":
        task = None
        if record["conversation_id"] is not None:
            task = store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
        check_agent_answer(record, task, conversation_id)
    return escalation_id, record


def respond(store: Store, escalation_id: str, answer: str, responder: str = "operator",
            max_chars: int = 8000, *, role: str = "operator", conversation_id: str | None = None,
            necessary: bool | None = None, response_action: str | None = None,
            preferences: Preferences | None = None) -> EscalationResult:
    """Record a person's answer (agent tool, operator CLI or console alike): the escalation is
    answered, a handed-off task comes back to the agent, and the agent is told to proceed.
    ``preferences``: learn from it (the preferences of the person and organisation its context names).
    ``role="agent"`` applies ``access.check_agent_answer`` (an agent never answers a hand-off, an L4
    escalation or another conversation's or an operator's record). ``necessary``: whether asking was
    needed (an outcome for the adaptive target); when not given, an answer that agrees with the
    agent's default counts as unnecessary."""
    escalation_id = out.identifier(escalation_id, "escalation_id")
    answer = out.text(answer, "answer", max_chars)
    responder = out.identifier(responder, "responder")
    conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
    with store.transaction() as conn:
        escalation_id, record = _answerable(store, conn, escalation_id, role, conversation_id)
        if record["status"] not in OPEN_STATUSES:
            when = f" at {record['answered_at']}" if record.get("answered_at") else ""
            raise StateError(f"escalation {escalation_id} is already {record['status']}{when}; "
                             "if something changed, raise a new question with clarify or escalate")
        now = store.now()
        store.update_escalation(conn, escalation_id, answer=answer, answered_by=responder,
                                answered_at=now, status="answered", resolved_at=record.get("resolved_at") or now,
                                response_action=response_action)
        store.audit(conn, "answer", responder, escalation_id=escalation_id,
                    conversation_id=record["conversation_id"], task_id=record["task_id"], data={"answer": answer})
        if preferences is not None:
            learning.learn(store, conn, escalation_id, preferences, responder)
        if necessary is not None:
            adaptive.record_outcome(store, conn, "necessary" if necessary else "unnecessary", responder,
                                    escalation_id=escalation_id)
        elif adaptive.agrees_with_default(record, answer):
            adaptive.record_outcome(store, conn, "unnecessary", responder, escalation_id=escalation_id,
                                    note="the answer agrees with the agent's default")
        locked = False
        if record["conversation_id"] is not None:
            task = store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
            locked = bool(task["locked"])
            if task["awaiting_guidance"] and record["severity"] == Severity.L3.value:
                store.update_task(conn, task["conversation_id"], task["task_id"], awaiting_guidance=0)
            if record["type"] == EscalationType.pattern.value and task["handed_off"]:
                store.update_task(conn, task["conversation_id"], task["task_id"], handed_off=0,
                                  escalation_count=0)
                store.audit(conn, "hand_back", responder, escalation_id=escalation_id,
                            conversation_id=task["conversation_id"], task_id=task["task_id"])
        record = store.escalation(escalation_id, conn)
    if locked:
        return out.from_record(record, Action.stop, out.ANSWERED_LOCKED, answer=answer)
    return out.from_record(record, Action.proceed, out.ANSWERED, answer=answer)


def unlock_task(store: Store, conversation_id: str, task_id: str, by: str, reason: str) -> None:
    """A person reviewed an L4 escalation: let the agent work on the task again (no model needed)."""
    conversation_id = out.identifier(conversation_id, "conversation_id")
    task_id = out.identifier(task_id, "task_id")
    by = out.identifier(by, "by")
    reason = out.text(reason, "reason", 2000)
    with store.transaction() as conn:
        task = store.conversations.find_task(conn, conversation_id, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id!r} of conversation {conversation_id!r} not found; "
                                "check both ids (the task id is 'default' when the agent gave none)")
        if not task.locked:
            raise StateError(f"task {task_id!r} of conversation {conversation_id!r} is not locked; nothing to unlock")
        store.update_task(conn, conversation_id, task_id, locked=0, locked_reason=None, locked_at=None,
                          locked_by_escalation=None)
        store.audit(conn, "unlock", by, escalation_id=task.locked_by_escalation, conversation_id=conversation_id,
                    task_id=task_id, data={"reason": reason})


RESPONSE_ACTIONS = ("approve", "reject", "modify", "delegate", "defer", "conditional")
NEXT_STEP = {
    "approve": "Approved: carry it out now; do not ask for confirmation.",
    "reject": "Rejected: do not do this. Continue the rest of the task without it, or offer an alternative.",
    "modify": "Approved with a change: make this change first, then carry it out - {change}",
    "conditional": "Approved on conditions: carry it out only while all of these hold - {conditions}",
    "defer": "Deferred until {until}: take no action on this point until then; {id} stays open.",
    "delegate": "Routed to {to} to decide: take no action on this point until their answer comes back ({id}).",
}


def structured_answer(action: str, *, change: str | None = None, to: str | None = None, until: str | None = None,
                      conditions: list[str] | None = None, note: str | None = None,
                      now: str | None = None) -> StructuredAnswer:
    """Check one structured answer: each action names what it needs (modify a change, delegate a
    person, defer a time in the future, conditional at least one condition)."""
    if action not in RESPONSE_ACTIONS:
        raise InputError(f"action {action!r} is not one of {', '.join(RESPONSE_ACTIONS)}")
    change = out.text(change, "change", 2000, required=action == "modify")
    to = out.identifier(to, "to", required=action == "delegate")
    note = out.text(note, "note", 2000, required=False)
    if conditions is not None and (not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions)):
        raise InputError("conditions must be a list of strings, e.g. ['only after 18:00']")
    kept = [c for c in (out.text(c, "a condition", 500, required=False) for c in conditions or []) if c]
    if action == "conditional" and not kept:
        raise InputError("a conditional approval needs at least one condition")
    if action == "defer":
        until = _future(until, now)
    return StructuredAnswer(action=action, change=change if action == "modify" else None,
                            to=to if action == "delegate" else None, until=until if action == "defer" else None,
                            conditions=kept if action == "conditional" else [], note=note)


def _future(until: str | None, now: str | None) -> str:
    if not isinstance(until, str) or not until.strip():
        raise InputError("defer needs until: an ISO time with a time zone, e.g. 2026-12-08T09:00:00Z")
    try:
        moment = parse_iso(until.strip())
    except ValueError:
        raise InputError(f"until {until!r} is not an ISO time; write e.g. 2026-12-08T09:00:00Z") from None
    if moment.tzinfo is None:
        raise InputError(f"until {until!r} has no time zone; add Z for UTC")
    when = iso(moment)
    if now is not None and when <= now:
        raise InputError(f"until {when} is not in the future (now {now})")
    return when


def answer_text(a: StructuredAnswer) -> str:
    """The answer as the record keeps it (and a later re-ask returns it)."""
    text = {"approve": "Approved.", "reject": "Rejected.", "modify": f"Approved with a change: {a.change}",
            "conditional": "Approved on conditions: " + "; ".join(a.conditions),
            "defer": f"Deferred until {a.until}.", "delegate": f"Delegated to {a.to}."}[a.action]
    return f"{text} {a.note}" if a.note else text


def respond_action(store: Store, escalation_id: str, action: str, responder: str = "operator", max_chars: int = 8000,
                   *, role: str = "operator", conversation_id: str | None = None, change: str | None = None,
                   to: str | None = None, until: str | None = None, conditions: list[str] | None = None,
                   note: str | None = None, necessary: bool | None = None,
                   check: Callable[[sqlite3.Connection, dict[str, Any], StructuredAnswer], None] | None = None,
                   then: Callable[[sqlite3.Connection, dict[str, Any], StructuredAnswer], None] | None = None,
                   preferences: Preferences | None = None) -> EscalationResult:
    """A structured answer. approve, reject, modify and conditional answer the escalation (as
    ``respond`` does) and tell the agent what to do; defer and delegate keep it open: deferred, it is
    due at ``until`` and the agent waits; delegated, it is assigned to ``to`` and the agent waits.
    For defer and delegate, ``check`` runs inside the transaction before the change (it raises to
    refuse it) and ``then`` after it, on the updated record (operations add their checks and
    notifications this way)."""
    a = structured_answer(action, change=change, to=to, until=until, conditions=conditions, note=note,
                          now=store.now())
    if a.action not in ("defer", "delegate"):
        result = respond(store, escalation_id, answer_text(a), responder, max_chars, role=role,
                         conversation_id=conversation_id, necessary=necessary, response_action=a.action,
                         preferences=preferences)
        if result.action is Action.stop:  # the task stays locked whatever the answer
            return result.model_copy(update={"response": a})
        step = NEXT_STEP[a.action].format(change=a.change, conditions="; ".join(a.conditions))
        return result.model_copy(update={"response": a, "instruction": step})
    escalation_id = out.identifier(escalation_id, "escalation_id")
    responder = out.identifier(responder, "responder")
    conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
    with store.transaction() as conn:
        escalation_id, record = _answerable(store, conn, escalation_id, role, conversation_id)
        if record["status"] not in OPEN_STATUSES:
            raise StateError(f"escalation {escalation_id} is already {record['status']}; a {a.action} applies to "
                             "an open escalation only")
        if check is not None:
            check(conn, record, a)
        if a.action == "defer":
            store.update_escalation(conn, escalation_id, due_at=a.until, deferred_until=a.until,
                                    response_action="defer")
            data: dict[str, str | None] = {"until": a.until, "note": a.note}
        else:
            store.update_escalation(conn, escalation_id, assignee=a.to, response_action="delegate")
            data = {"assignee": a.to, "note": a.note}
        store.audit(conn, a.action, responder, escalation_id=escalation_id, conversation_id=record["conversation_id"],
                    task_id=record["task_id"], data=data)
        record = store.escalation(escalation_id, conn)
        if then is not None:
            then(conn, record, a)
    step = NEXT_STEP[a.action].format(until=a.until, to=a.to, id=escalation_id)
    return out.from_record(record, Action.wait, step, response=a)
