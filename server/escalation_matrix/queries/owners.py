"""Which agent principal owns a conversation (``conversation_owners``). Functions over the caller's
connection rather than a store-bound group: the access checks run inside the transaction of the
tool call they guard and are handed only its connection."""

from __future__ import annotations

from .base import Connection


def claim(conn: Connection, conversation_id: str, principal: str, at: str) -> str:
    """Record ``principal`` as the conversation's owner unless it has one; the owner afterwards."""
    conn.execute("INSERT INTO conversation_owners (conversation_id, principal, created_at) VALUES (?, ?, ?) "
                 "ON CONFLICT DO NOTHING", (conversation_id, principal, at))
    found = owner(conn, conversation_id)
    return principal if found is None else found


def owner(conn: Connection, conversation_id: str) -> str | None:
    """The principal that owns the conversation; None when no agent principal has claimed it."""
    row = conn.execute("SELECT principal FROM conversation_owners WHERE conversation_id = ?",
                       (conversation_id,)).fetchone()
    return None if row is None else str(row[0])
