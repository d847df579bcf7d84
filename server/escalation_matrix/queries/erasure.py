"""Erasing personal data: the texts people wrote are replaced in place (records, ids, timestamps,
outcomes and scores stay for the reports). Runs inside the erasing transaction."""

from __future__ import annotations

import json

from .base import OPEN_STATUSES, Connection, Queries, marks


class ErasureQueries(Queries):
    def of_conversation(self, conn: Connection, conversation_id: str) -> list[str]:
        """The ids of every escalation of the conversation."""
        rows = conn.execute("SELECT id FROM escalations WHERE conversation_id = ?", (conversation_id,))
        return [str(row[0]) for row in rows]

    def expired(self, conn: Connection, cutoff: str) -> list[str]:
        """Escalations not yet erased that stopped being open (last changed) by ``cutoff``."""
        rows = conn.execute(
            f"SELECT id FROM escalations WHERE erased_at IS NULL AND status NOT IN ({marks(OPEN_STATUSES)}) "
            "AND updated_at <= ?", (*OPEN_STATUSES, cutoff))
        return [str(row[0]) for row in rows]

    def erase(self, conn: Connection, escalation_id: str, erased: str, at: str) -> None:
        """Replace what people wrote on one escalation with ``erased``: its texts, notes, the agent's
        suggestion and the actor's choice (the decision's +1/-1 and score stay), and its queued
        notification texts. ``at``: when (one time for every escalation of one erasure)."""
        now = at
        conn.execute(
            "UPDATE escalations SET request = ?, question = CASE WHEN question IS NULL THEN NULL ELSE ? END, "
            "details = NULL, answer = CASE WHEN answer IS NULL THEN NULL ELSE ? END, message = ?, "
            "context = '{}', options = '[]', question_vector = NULL, erased_at = ?, updated_at = ? WHERE id = ?",
            (erased, erased, erased, erased, now, now, escalation_id))
        conn.execute("UPDATE notes SET text = ? WHERE escalation_id = ?", (erased, escalation_id))
        conn.execute("UPDATE escalations SET suggestion = ? WHERE id = ? AND suggestion IS NOT NULL",
                     (erased, escalation_id))
        conn.execute("UPDATE actor_decisions SET suggestion = ?, choice = ? WHERE escalation_id = ?",
                     (erased, erased, escalation_id))
        conn.execute("UPDATE outbox SET payload = ? WHERE escalation_id = ?",
                     (json.dumps({"text": f"[{escalation_id}] {erased}"}), escalation_id))
