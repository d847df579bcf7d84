"""The notification outbox: one row per message and target, queued in the transaction that made
the change, then claimed, sent, retried with backoff or marked failed by the deliverer."""

from __future__ import annotations

from typing import TypedDict

from .base import Connection, Queries, Row, equals_where


class OutboxStatus(TypedDict):
    """An outbox row as listings show it (without its payload)."""

    id: int
    escalation_id: str | None
    event: str
    channel: str
    target: str | None
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    sent_at: str | None


class OutboxEntry(OutboxStatus):
    """An outbox row with the JSON payload the receiver gets."""

    payload: str


class OutboxQueries(Queries):
    def queue(self, conn: Connection, escalation_id: str, event: str, channel: str, target: str | None,
              payload: str, at: str) -> None:
        """One message for one channel target, due at once (``at``)."""
        conn.execute(
            "INSERT INTO outbox (escalation_id, event, channel, target, payload, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (escalation_id, event, channel, target, payload, at, at))

    def due(self, conn: Connection, now: str, limit: int) -> list[OutboxEntry]:
        """Pending messages whose next attempt is due at ``now``, oldest first."""
        rows = conn.execute(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?", (now, limit))
        return [_entry(row) for row in rows]

    def claim(self, conn: Connection, ids: list[int], until: str) -> None:
        """Hold these messages back until ``until``, so a concurrent deliverer skips them."""
        for outbox_id in ids:
            conn.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (until, outbox_id))

    def sent(self, conn: Connection, ids: list[int], at: str) -> None:
        conn.executemany("UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, last_error = NULL "
                         "WHERE id = ?", [(at, outbox_id) for outbox_id in ids])

    def failed(self, conn: Connection, outbox_id: int, attempts: int, error: str) -> None:
        """No retries left: the message stays failed (``error`` names no secret)."""
        conn.execute("UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                     (attempts, error, outbox_id))

    def retry(self, conn: Connection, outbox_id: int, attempts: int, error: str, at: str) -> None:
        """Try again at ``at``."""
        conn.execute("UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                     (attempts, error, at, outbox_id))

    def entries(self, status: str | None = None, escalation_id: str | None = None,
                conn: Connection | None = None) -> list[OutboxStatus]:
        """The outbox rows (all, or those with this status / of this escalation), oldest first."""
        where, params = equals_where(status=status, escalation_id=escalation_id)
        rows = self._read(conn).execute(f"SELECT * FROM outbox WHERE {where} ORDER BY id", params)
        return [_status(row) for row in rows]


def _status(row: Row) -> OutboxStatus:
    return OutboxStatus(
        id=row["id"], escalation_id=row["escalation_id"], event=row["event"], channel=row["channel"],
        target=row["target"], status=row["status"], attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"], created_at=row["created_at"], sent_at=row["sent_at"])


def _entry(row: Row) -> OutboxEntry:
    return OutboxEntry(**_status(row), payload=row["payload"])
