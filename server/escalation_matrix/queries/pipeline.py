"""Pipeline items: each item's last reported state and the open escalation it raised, so an item
is escalated once per open escalation."""

from __future__ import annotations

from .base import Connection, Queries


class PipelineQueries(Queries):
    def escalation_of(self, conn: Connection, item_id: str) -> str | None:
        """The escalation the item last raised, if any."""
        row = conn.execute("SELECT escalation_id FROM pipeline_items WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def save(self, conn: Connection, item_id: str, iterations: int, failures: int, confidence: float | None,
             error: str | None, escalation_id: str | None) -> None:
        """The item's reported state; a new item starts with ``escalation_id``, a known one keeps its own."""
        conn.execute(
            "INSERT INTO pipeline_items (item_id, iterations, consecutive_failures, confidence, last_error, "
            "escalation_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
            "iterations = excluded.iterations, consecutive_failures = excluded.consecutive_failures, "
            "confidence = excluded.confidence, last_error = excluded.last_error, updated_at = excluded.updated_at",
            (item_id, iterations, failures, confidence, error, escalation_id, self._now()))

    def set_escalation(self, conn: Connection, item_id: str, escalation_id: str) -> None:
        conn.execute("UPDATE pipeline_items SET escalation_id = ? WHERE item_id = ?", (escalation_id, item_id))
