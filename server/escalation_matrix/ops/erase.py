"""Erasing personal data: the text people wrote (request, question, details, answer, message,
context, options, notes, queued notification texts) is replaced, while the records, their ids,
timestamps and outcomes stay for the reports. The audit trail never held that text (only keyed
references, see ``store.PERSONAL_AUDIT_FIELDS``), so it stays whole and verifiable; the erasure itself
is an audit entry."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InputError, NotFoundError
from ..preferences import forget
from ..store import OPEN_STATUSES, Store, iso

if TYPE_CHECKING:
    from ..loader import Policy

ERASED = "[erased]"


def erase_conversation(store: Store, conversation_id: str, by: str, reason: str) -> int:
    """Erase the personal data of every escalation of ``conversation_id``; returns how many."""
    if not conversation_id.strip() or not by.strip() or not reason.strip():
        raise InputError("give the conversation id, --by (who erases) and --reason (why, e.g. the request reference)")
    with store.transaction() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM escalations WHERE conversation_id = ?", (conversation_id,))]
        if not ids:
            raise NotFoundError(f"conversation {conversation_id!r} has no escalations; check the id "
                                "(`escalation-matrix list` shows them)")
        _erase(store, conn, ids)
        store.audit(conn, "erased", by, conversation_id=conversation_id,
                    data={"escalations": ids, "why": reason.strip()})
    return len(ids)


def erase_expired(store: Store, policy: Policy, now: datetime | None = None) -> int:
    """Apply ``retention.personal_data``: erase escalations that stopped being open that long ago."""
    keep = policy.operations.retention.personal_data
    if keep is None:
        return 0
    cutoff = iso((now or store.clock()) - keep)
    marks = ", ".join("?" * len(OPEN_STATUSES))
    with store.transaction() as conn:
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM escalations WHERE erased_at IS NULL AND status NOT IN ({marks}) AND updated_at <= ?",
            (*OPEN_STATUSES, cutoff))]
        if ids:
            _erase(store, conn, ids)
            store.audit(conn, "erased", "retention", data={"escalations": ids, "why": f"older than {cutoff}"})
    return len(ids)


def _erase(store: Store, conn: Any, ids: list[str]) -> None:
    now = store.now()
    for esc_id in ids:
        conn.execute(
            "UPDATE escalations SET request = ?, question = CASE WHEN question IS NULL THEN NULL ELSE ? END, "
            "details = NULL, answer = CASE WHEN answer IS NULL THEN NULL ELSE ? END, message = ?, "
            "context = '{}', options = '[]', question_vector = NULL, erased_at = ?, updated_at = ? WHERE id = ?",
            (ERASED, ERASED, ERASED, ERASED, now, now, esc_id))
        conn.execute("UPDATE notes SET text = ? WHERE escalation_id = ?", (ERASED, esc_id))
        # the agent's suggestion and the actor's choice go too; the decision's +1/-1 and score stay
        conn.execute("UPDATE escalations SET suggestion = ? WHERE id = ? AND suggestion IS NOT NULL", (ERASED, esc_id))
        conn.execute("UPDATE actor_decisions SET suggestion = ?, choice = ? WHERE escalation_id = ?",
                     (ERASED, ERASED, esc_id))
        conn.execute("UPDATE outbox SET payload = ? WHERE escalation_id = ?",
                     (json.dumps({"text": f"[{esc_id}] {ERASED}"}), esc_id))
    forget(conn, ids, now, ERASED)  # a preference learned from these answers holds the same words
    if ids:
        from .batches import forget as forget_batched

        forget_batched(conn, ids, ERASED)  # a batch notification lists several escalations' questions
