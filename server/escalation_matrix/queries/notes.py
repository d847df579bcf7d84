"""The notes operators add to an escalation record."""

from __future__ import annotations

from typing import TypedDict

from .base import Connection, Queries


class Note(TypedDict):
    author: str | None
    text: str
    created_at: str


class NoteQueries(Queries):
    def add(self, conn: Connection, escalation_id: str, author: str, text: str) -> None:
        """A note on the record (``text`` as it is to be stored: already redacted)."""
        conn.execute("INSERT INTO notes (escalation_id, author, text, created_at) VALUES (?, ?, ?, ?)",
                     (escalation_id, author, text, self._now()))

    def of_escalation(self, escalation_id: str, conn: Connection | None = None) -> list[Note]:
        """The record's notes, oldest first."""
        rows = self._read(conn).execute(
            "SELECT author, text, created_at FROM notes WHERE escalation_id = ? ORDER BY id", (escalation_id,))
        return [Note(author=row["author"], text=row["text"], created_at=row["created_at"]) for row in rows]
