"""The fail-safe stages fired on escalations (``failsafe_events``): each stage once per
escalation, recorded in the transaction that applies its effect."""

from __future__ import annotations

from typing import TypedDict

from .base import OPEN_STATUSES, Connection, Queries, marks


class StageFired(TypedDict):
    """A stage on an escalation's record (``show``): its name and when it was due."""

    stage: str
    at: str


class FailsafeQueries(Queries):
    def fired(self, conn: Connection, escalation_id: str) -> set[str]:
        """The stages already fired on one escalation."""
        rows = conn.execute("SELECT stage FROM failsafe_events WHERE escalation_id = ?", (escalation_id,))
        return {str(row[0]) for row in rows}

    def fired_on_open(self, conn: Connection) -> dict[str, set[str]]:
        """The stages already fired on every open escalation, by escalation id."""
        done: dict[str, set[str]] = {}
        for row in conn.execute(
                f"SELECT f.escalation_id, f.stage FROM failsafe_events f JOIN escalations e "
                f"ON e.id = f.escalation_id WHERE e.status IN ({marks(OPEN_STATUSES)})", OPEN_STATUSES):
            done.setdefault(row[0], set()).add(row[1])
        return done

    def record(self, conn: Connection, escalation_id: str, stage: str, at: str) -> bool:
        """Record that ``stage`` fired (due ``at``); False when it was already recorded (another
        sweeper got there first), so its effect is not applied twice."""
        cur = conn.execute("INSERT INTO failsafe_events (escalation_id, stage, at) VALUES (?, ?, ?) "
                           "ON CONFLICT DO NOTHING", (escalation_id, stage, at))
        return bool(cur.rowcount)

    def of_escalation(self, escalation_id: str, conn: Connection | None = None) -> list[StageFired]:
        """The stages fired on one escalation, in the order they were due."""
        rows = self._read(conn).execute(
            "SELECT stage, at FROM failsafe_events WHERE escalation_id = ? ORDER BY at, rowid", (escalation_id,))
        return [StageFired(stage=row["stage"], at=row["at"]) for row in rows]
