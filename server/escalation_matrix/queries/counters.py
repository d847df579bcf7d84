"""Named counters (``counters``): a value every server sharing the database sees, raised inside a
transaction so no two callers get the same value."""

from __future__ import annotations

from .base import Connection, Queries


class CounterQueries(Queries):
    def increment(self, conn: Connection, name: str) -> int:
        """Raise the counter by one (creating it at 0 first); its new value."""
        conn.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (name,))
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
        return int(conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def value(self, name: str, conn: Connection | None = None) -> int | None:
        """The counter's value; None when it was never raised."""
        row = self._read(conn).execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])
