"""What a conversation is waiting for: the fail-safe news told once to the agent in its next tool
result (``notices``), and the ``escalation://pending/{conversation_id}`` listing."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from . import guard_results as out
from .errors import NotFoundError
from .durations import duration_label
from .queries.records import RecordFilter
from .store import OPEN_STATUSES, Store

if TYPE_CHECKING:
    from .loader import Policy


def notices(store: Store, conn: sqlite3.Connection, policy: Policy, conversation_id: str) -> list[str]:
    """What the fail-safe stages did to this conversation's open escalations since the agent's
    last call (a reminder, a task now awaiting guidance or blocked), each told once."""
    stages = policy.operations.failsafes.root
    told = []
    for fired in store.conversations.untold_stages(conn, conversation_id):
        rule = stages.get(fired.stage)
        if rule is None:
            continue
        if rule.action == "remind":
            told.append(out.NOTICE_REMINDER.format(id=fired.escalation_id, age=duration_label(rule.after)))
        elif rule.action == "raise" and rule.awaiting_guidance:
            told.append(out.NOTICE_GUIDANCE.format(id=fired.escalation_id, task=fired.task_id))
        elif rule.action == "block":
            told.append(out.NOTICE_BLOCKED.format(id=fired.escalation_id, task=fired.task_id))
        store.conversations.mark_told(conn, fired.escalation_id, fired.stage)
    return told


def pending(store: Store, conversation_id: str) -> dict[str, Any]:
    """What the conversation is waiting for: open escalations (reminded, awaiting guidance) and
    tasks that are paused, locked or handed off. Read-only: notices stay untold."""
    conversation_id = out.identifier(conversation_id, "conversation_id")
    open_ = store.find_escalations(RecordFilter(conversation_id=conversation_id, statuses=OPEN_STATUSES), "sequence")
    tasks = store.conversations.tasks(conversation_id)
    if not open_ and not tasks:
        raise NotFoundError(f"conversation {conversation_id!r} is unknown: it has made no escalate, clarify "
                            "or check_scope call; pass the conversation_id those calls used")
    paused = {r["task_id"] for r in open_ if r["severity"] == "L3" and r["type"] != "pattern"}
    return {
        "conversation_id": conversation_id,
        "escalations": [{k: r[k] for k in ("id", "ref", "task_id", "type", "severity", "status", "question", "assignee",
                                            "due_at", "reminded_at")} for r in open_],
        "tasks": [{"task_id": t.task_id,
                   "state": ("locked" if t.locked else "handed_off" if t.handed_off
                             else "awaiting_guidance" if t.task_id in paused else "active")}
                  for t in tasks],
    }
