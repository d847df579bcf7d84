"""The decision log (``decisions``) read back by agent behaviour: the actions of a conversation's
latest evaluated requests, and of every conversation an agent principal owns (a conversation with
no owner counts as the local agent's). Read-only; the rows are written by ``Store.record_decision``."""

from __future__ import annotations

from . import owners
from .base import Connection, Queries


class DecisionQueries(Queries):
    def conversation_actions(self, conversation_id: str, limit: int, conn: Connection | None = None) -> list[str]:
        """The action of the conversation's latest ``limit`` decisions, newest first."""
        rows = self._read(conn).execute(
            "SELECT action FROM decisions WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
            (conversation_id, limit)).fetchall()
        return [str(row[0]) for row in rows]

    def owner(self, conversation_id: str, conn: Connection | None = None) -> str | None:
        """The agent principal that owns the conversation; None when none has claimed it."""
        return owners.owner(self._read(conn), conversation_id)

    def agent_actions(self, agent: str, unowned: str, limit: int, conn: Connection | None = None) -> list[str]:
        """The action of the latest ``limit`` decisions in all conversations ``agent`` owns, newest
        first; conversations nobody claimed count as ``unowned``'s."""
        rows = self._read(conn).execute(
            "SELECT d.action FROM decisions d LEFT JOIN conversation_owners o ON o.conversation_id = d.conversation_id "
            "WHERE d.conversation_id IS NOT NULL AND COALESCE(o.principal, ?) = ? ORDER BY d.id DESC LIMIT ?",
            (unowned, agent, limit)).fetchall()
        return [str(row[0]) for row in rows]
