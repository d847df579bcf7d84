"""Batches of questions for one person (``batches``, and the ``batch_id`` of their escalations):
opened, filled, delivered once (an ``UPDATE ... WHERE status = 'open'`` only one caller wins),
answered, listed and counted for the reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict

from .base import OPEN_STATUSES, Connection, Queries, Row, marks


class Batch(TypedDict):
    id: int
    person: str
    status: str
    opened_at: str
    deliver_by: str
    items: int
    delivered_at: str | None
    delivered_why: str | None
    answered_at: str | None


@dataclass(frozen=True)
class BatchOfEscalation:
    """The batch an escalation waits (or waited) in."""

    id: int
    status: str
    deliver_by: str
    person: str


@dataclass(frozen=True)
class DeliveredBatches:
    """Batches delivered in a period and the items they held."""

    batches: int
    items: int


class BatchQueries(Queries):
    def open_for(self, conn: Connection, person: str) -> Batch | None:
        """The person's open batch (the oldest, should there be several)."""
        row = conn.execute("SELECT * FROM batches WHERE status = 'open' AND person = ? ORDER BY id LIMIT 1",
                           (person,)).fetchone()
        return None if row is None else _batch(row)

    def open(self, conn: Connection, person: str, opened_at: str, deliver_by: str) -> int:
        """A new, empty open batch for ``person``; its id."""
        row = conn.execute("INSERT INTO batches (person, status, opened_at, deliver_by, items) "
                           "VALUES (?, 'open', ?, ?, 0) RETURNING id", (person, opened_at, deliver_by)).fetchone()
        return int(row[0])

    def add(self, conn: Connection, batch_id: int, escalation_id: str) -> None:
        """The escalation waits in the batch."""
        conn.execute("UPDATE batches SET items = items + 1 WHERE id = ?", (batch_id,))
        conn.execute("UPDATE escalations SET batch_id = ? WHERE id = ?", (batch_id, escalation_id))

    def get(self, batch_id: int, conn: Connection | None = None) -> Batch | None:
        row = self._read(conn).execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _batch(row)

    def mark_delivered(self, conn: Connection, batch_id: int, at: str, why: str) -> bool:
        """Deliver an open batch; False when it is not open (another caller delivered it first)."""
        cur = conn.execute("UPDATE batches SET status = 'delivered', delivered_at = ?, delivered_why = ? "
                           "WHERE id = ? AND status = 'open'", (at, why, batch_id))
        return cur.rowcount == 1

    def move_clock(self, conn: Connection, escalation_id: str, severity_at: str, due_at: str | None) -> None:
        """A delivered question's fail-safe clock starts again at ``severity_at``."""
        conn.execute("UPDATE escalations SET severity_at = ?, due_at = ? WHERE id = ?",
                     (severity_at, due_at, escalation_id))

    def queued_ids(self, conn: Connection) -> set[str]:
        """Escalations still waiting in an open batch."""
        return {str(r[0]) for r in conn.execute("SELECT e.id FROM escalations e JOIN batches b ON b.id = e.batch_id "
                                                "WHERE b.status = 'open'")}

    def due(self, conn: Connection, at: str) -> list[int]:
        """Open batches whose window ended by ``at``, oldest first."""
        return [int(r[0]) for r in conn.execute(
            "SELECT id FROM batches WHERE status = 'open' AND deliver_by <= ? ORDER BY id", (at,))]

    def of_escalation(self, conn: Connection, escalation_id: str) -> BatchOfEscalation | None:
        row = conn.execute("SELECT b.id, b.status, b.deliver_by, b.person FROM escalations e JOIN batches b "
                           "ON b.id = e.batch_id WHERE e.id = ?", (escalation_id,)).fetchone()
        return None if row is None else BatchOfEscalation(row["id"], row["status"], row["deliver_by"], row["person"])

    def forget_notifications(self, conn: Connection, escalation_ids: list[str], text: str) -> None:
        """Every batch notification of the batches of these escalations loses its questions: its
        payload says only ``[batch N] text`` (erasure)."""
        batch_ids = [r[0] for r in conn.execute(
            f"SELECT DISTINCT batch_id FROM escalations WHERE batch_id IS NOT NULL AND id IN ({marks(escalation_ids)})",
            escalation_ids)]
        for batch_id in batch_ids:
            conn.execute("UPDATE outbox SET payload = ? WHERE event = 'batch_delivered' AND escalation_id IN "
                         "(SELECT id FROM escalations WHERE batch_id = ?)",
                         (json.dumps({"text": f"[batch {batch_id}] {text}"}), batch_id))

    def listing(self, person: str | None = None, limit: int = 200, conn: Connection | None = None) -> list[Batch]:
        """Batches (all, or one person's), newest first."""
        where, params = ("person = ?", [person]) if person else ("1=1", [])
        rows = self._read(conn).execute(f"SELECT * FROM batches WHERE {where} ORDER BY id DESC LIMIT {int(limit)}",
                                        params)
        return [_batch(row) for row in rows]

    def open_items(self, conn: Connection, batch_id: int) -> int:
        """How many of the batch's escalations are still open."""
        row = conn.execute(f"SELECT COUNT(*) FROM escalations WHERE batch_id = ? AND status IN "
                           f"({marks(OPEN_STATUSES)})", (batch_id, *OPEN_STATUSES)).fetchone()
        return int(row[0])

    def mark_answered(self, conn: Connection, batch_id: int) -> None:
        conn.execute("UPDATE batches SET status = 'answered', answered_at = ? WHERE id = ?", (self._now(), batch_id))

    def delivered_between(self, start: str, end: str, conn: Connection | None = None) -> DeliveredBatches:
        """Batches delivered in ``[start, end)`` and their items."""
        row = self._read(conn).execute("SELECT COUNT(*), COALESCE(SUM(items), 0) FROM batches WHERE delivered_at >= ? "
                           "AND delivered_at < ?", (start, end)).fetchone()
        return DeliveredBatches(int(row[0]), int(row[1]))


def _batch(row: Row) -> Batch:
    return Batch(id=row["id"], person=row["person"], status=row["status"], opened_at=row["opened_at"],
                 deliver_by=row["deliver_by"], items=row["items"], delivered_at=row["delivered_at"],
                 delivered_why=row["delivered_why"], answered_at=row["answered_at"])
