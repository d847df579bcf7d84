"""What every query group shares: the connection type, the status names the queries filter on,
and the binding of a group to the store's connection and clock."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Sequence

# the connection ``Store.transaction()`` yields; PostgresStore's connection has the same interface
Connection = sqlite3.Connection
# a row as the connection gives it: by position, by column name (``pgsql.Row`` reads the same)
Row = sqlite3.Row

OPEN_STATUSES = ("open", "awaiting_response", "raised", "blocked")
STATUSES = (*OPEN_STATUSES, "answered", "resolved", "expired", "closed")


def marks(values: Sequence[object]) -> str:
    """One ``?`` per value, comma-separated, for an ``IN (...)`` list."""
    return ", ".join("?" * len(values))


def equals_where(**filters: Any) -> tuple[str, list[Any]]:
    """``column = ?`` for every filter that is set (None and "" are skipped), joined by AND.
    Column names come from the caller's keywords, never from user input."""
    given = {column: value for column, value in filters.items() if value not in (None, "")}
    return " AND ".join(f"{column} = ?" for column in given) or "1=1", list(given.values())


class Queries:
    """A group of named queries bound to a store: ``connect`` gives the store's own connection for
    reads made outside a transaction, ``now`` the store's clock as an ISO timestamp."""

    def __init__(self, connect: Callable[[], Connection], now: Callable[[], str]) -> None:
        self._connect = connect
        self._now = now

    def _read(self, conn: Connection | None) -> Connection:
        """The caller's transaction when it gives one (its uncommitted writes are visible), else
        the store's connection."""
        return conn if conn is not None else self._connect()
