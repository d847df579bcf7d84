"""A person's answer to an escalation, and the unlock of an L4-locked task.

Both the conversation guard (the agent's ``respond`` tool) and the operator's records (CLI and
console) record answers through these functions, so this module sits below both of them."""

from __future__ import annotations

from . import adaptive
from . import guard_results as out
from .access import check_agent_answer
from .errors import NotFoundError, StateError
from .models import Action, EscalationResult, EscalationType, Severity
from .store import OPEN_STATUSES, Store

DEFAULT_TASK = "default"


def respond(store: Store, escalation_id: str, answer: str, responder: str = "operator",
            max_chars: int = 8000, *, role: str = "operator", conversation_id: str | None = None,
            necessary: bool | None = None) -> EscalationResult:
    """Record a person's answer (agent tool, operator CLI or console alike): the escalation is
    answered, a handed-off task comes back to the agent, and the agent is told to proceed.
    ``role="agent"`` applies ``access.check_agent_answer`` (an agent never answers a hand-off, an L4
    escalation or another conversation's or an operator's record). ``necessary``: whether asking was
    needed (an outcome for the adaptive target); when not given, an answer that agrees with the
    agent's default counts as unnecessary."""
    escalation_id = out.identifier(escalation_id, "escalation_id")
    answer = out.text(answer, "answer", max_chars)
    responder = out.identifier(responder, "responder")
    conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
    with store.transaction() as conn:
        escalation_id = store.resolve(escalation_id, conn)  # an agent may name it by its ref
        record = store.escalation(escalation_id, conn)
        if role == "agent":
            task = None
            if record["conversation_id"] is not None:
                task = store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
            check_agent_answer(record, task, conversation_id)
        if record["status"] not in OPEN_STATUSES:
            when = f" at {record['answered_at']}" if record.get("answered_at") else ""
            raise StateError(f"escalation {escalation_id} is already {record['status']}{when}; "
                             "if something changed, raise a new question with clarify or escalate")
        now = store.now()
        store.update_escalation(conn, escalation_id, answer=answer, answered_by=responder,
                                answered_at=now, status="answered", resolved_at=record.get("resolved_at") or now)
        store.audit(conn, "answer", responder, escalation_id=escalation_id,
                    conversation_id=record["conversation_id"], task_id=record["task_id"], data={"answer": answer})
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
        row = conn.execute("SELECT * FROM tasks WHERE conversation_id = ? AND task_id = ?",
                           (conversation_id, task_id)).fetchone()
        if row is None:
            raise NotFoundError(f"task {task_id!r} of conversation {conversation_id!r} not found; "
                                "check both ids (the task id is 'default' when the agent gave none)")
        if not row["locked"]:
            raise StateError(f"task {task_id!r} of conversation {conversation_id!r} is not locked; nothing to unlock")
        store.update_task(conn, conversation_id, task_id, locked=0, locked_reason=None, locked_at=None,
                          locked_by_escalation=None)
        store.audit(conn, "unlock", by, escalation_id=row["locked_by_escalation"], conversation_id=conversation_id,
                    task_id=task_id, data={"reason": reason})
