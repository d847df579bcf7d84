"""Which escalation records a caller wants, said with named fields instead of SQL: a
``RecordFilter`` (the store turns it into the WHERE clause) and a named ``Order``. The store's
``find_escalations`` and ``count_escalations`` take them; the records come back decoded by the
store (``Store.escalation`` shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Order = Literal["created", "newest", "recently_updated", "sequence"]
ORDERS: dict[Order, str] = {
    "created": "created_at, year, seq",  # oldest first
    "newest": "created_at DESC, seq DESC",
    "recently_updated": "updated_at DESC, year DESC, seq DESC",
    "sequence": "year, seq",  # by id
}


@dataclass(frozen=True)
class RecordFilter:
    """Every field that is set must hold (None: any value)."""

    statuses: tuple[str, ...] | None = None  # one of these
    conversation_id: str | None = None
    batch_id: int | None = None
    assignee: str | None = None
    assignee_any_case: str | None = None  # the assignee, compared ignoring case
    type: str | None = None
    severity: str | None = None
    level: int | None = None
    created_by: str | None = None  # created at or before this ISO time
    words: tuple[str, ...] = ()  # each word appears in one of ``searched``
    searched: tuple[str, ...] = ()  # column names (the caller's constants, never user input)

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters (``1=1`` when nothing is set)."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.statuses is not None:
            clauses.append(f"status IN ({', '.join('?' * len(self.statuses))})")
            params.extend(self.statuses)
        for column, value in (("conversation_id", self.conversation_id), ("batch_id", self.batch_id),
                              ("assignee", self.assignee), ("type", self.type), ("severity", self.severity),
                              ("level", self.level)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.assignee_any_case is not None:
            clauses.append("LOWER(assignee) = LOWER(?)")  # portable: PostgreSQL has no NOCASE collation
            params.append(self.assignee_any_case)
        if self.created_by is not None:
            clauses.append("created_at <= ?")
            params.append(self.created_by)
        for word in self.words:
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(" + " OR ".join(f"\"{c}\" LIKE ? ESCAPE '\\'" for c in self.searched) + ")")
            params.extend([pattern] * len(self.searched))
        return " AND ".join(clauses) or "1=1", params


ALL_RECORDS = RecordFilter()
