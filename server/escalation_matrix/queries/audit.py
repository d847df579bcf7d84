"""Reading the hash-chained audit trail back for verification (appending is ``Store.audit``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .base import Connection, Queries

# what an entry's hash covers (``store.entry_hash``), beside the previous entry's hash
HASHED_FIELDS = ("seq", "at", "actor", "action", "escalation_id", "conversation_id", "task_id", "data")


@dataclass(frozen=True)
class AuditRow:
    """One stored audit entry: the hashed fields (``data`` as stored JSON text), the chain link and the MAC."""

    seq: int
    at: str
    actor: str
    action: str
    escalation_id: str | None
    conversation_id: str | None
    task_id: str | None
    data: str
    prev_hash: str
    hash: str
    mac: str | None

    def hashed(self) -> dict[str, Any]:
        """The fields the entry's hash covers (``store.entry_hash``)."""
        return {name: getattr(self, name) for name in HASHED_FIELDS}


class AuditQueries(Queries):
    def in_order(self, conn: Connection | None = None) -> Iterator[AuditRow]:
        """Every entry by sequence number, read as it goes (a long trail is not held in memory)."""
        for row in self._read(conn).execute("SELECT * FROM audit ORDER BY seq"):
            yield AuditRow(seq=row["seq"], at=row["at"], actor=row["actor"], action=row["action"],
                           escalation_id=row["escalation_id"], conversation_id=row["conversation_id"],
                           task_id=row["task_id"], data=row["data"], prev_hash=row["prev_hash"], hash=row["hash"],
                           mac=row["mac"])

    def recorded_length(self, conn: Connection | None = None) -> int | None:
        """The trail's length as the ``audit_length`` trigger kept it (None on a trail without it)."""
        row = self._read(conn).execute("SELECT value FROM counters WHERE name = 'audit-length'").fetchone()
        return None if row is None else int(row[0])
