"""Erasing personal data: the text people wrote (request, question, details, answer, message,
context, options, notes, queued notification texts) is replaced, while the records, their ids,
timestamps and outcomes stay for the reports. The audit trail never held that text (only keyed
references, see ``store.PERSONAL_AUDIT_FIELDS``), so it stays whole and verifiable; the erasure itself
is an audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InputError, NotFoundError
from ..preferences import forget
from ..store import Store, iso

if TYPE_CHECKING:
    from ..loader import Policy

ERASED = "[erased]"


def erase_conversation(store: Store, conversation_id: str, by: str, reason: str) -> int:
    """Erase the personal data of every escalation of ``conversation_id``; returns how many."""
    if not conversation_id.strip() or not by.strip() or not reason.strip():
        raise InputError("give the conversation id, --by (who erases) and --reason (why, e.g. the request reference)")
    with store.transaction() as conn:
        ids = store.erasure.of_conversation(conn, conversation_id)
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
    with store.transaction() as conn:
        ids = store.erasure.expired(conn, cutoff)
        if ids:
            _erase(store, conn, ids)
            store.audit(conn, "erased", "retention", data={"escalations": ids, "why": f"older than {cutoff}"})
    return len(ids)


def _erase(store: Store, conn: Any, ids: list[str]) -> None:
    now = store.now()
    for esc_id in ids:
        store.erasure.erase(conn, esc_id, ERASED, now)
    forget(store, conn, ids, now, ERASED)  # a preference learned from these answers holds the same words
    if ids:
        from .batches import forget as forget_batched

        forget_batched(store, conn, ids, ERASED)  # a batch notification lists several escalations' questions
