"""The adaptive escalation target's tables: per-type threshold offsets (``threshold_offsets``),
every change made to them (``threshold_changes``: before, after, why, by whom, what it reverts),
the outcomes marked on escalations (``outcomes``) and the window of decisions an adjustment
measures. Writes run in the caller's transaction, so an offset, its change and its audit entry
land together."""

from __future__ import annotations

from typing import TypedDict

from .base import Connection, Queries, Row, marks

PENDING = "adaptive-pending"  # counters row: decisions since the last automatic adjustment


class ThresholdChange(TypedDict):
    """One change of a type's offset (``threshold_changes``); ``rate`` and ``decisions`` describe
    the window of an automatic adjustment (None for an operator's change)."""

    id: int
    at: str
    type: str
    before: float
    after: float
    reason: str
    by: str
    reverts: int | None
    reverted_by: int | None
    rate: float | None
    decisions: int | None


class Outcome(TypedDict):
    """An outcome row: necessary / unnecessary for an escalation, missed for a request that should
    have escalated; ``adjustment`` is the change that used it (0: an adjustment that changed nothing)."""

    id: int
    at: str
    escalation_id: str | None
    type: str
    outcome: str
    by: str
    note: str | None
    adjustment: int | None


class OutcomeMark(TypedDict):
    """The outcome marked on one escalation, as a refusal to mark it twice quotes it."""

    outcome: str
    by: str
    at: str
    note: str | None


class ThresholdQueries(Queries):
    # --- offsets and their changes ---
    def offsets(self, conn: Connection | None = None) -> dict[str, float]:
        """Every stored offset by type name (zero ones included)."""
        rows = self._read(conn).execute("SELECT type, value FROM threshold_offsets").fetchall()
        return {str(row[0]): float(row[1]) for row in rows}

    def set_offset(self, conn: Connection, etype: str, value: float, at: str) -> None:
        conn.execute("INSERT INTO threshold_offsets VALUES (?, ?, ?) ON CONFLICT (type) DO UPDATE SET value = "
                     "excluded.value, updated_at = excluded.updated_at", (etype, value, at))

    def record_change(self, conn: Connection, at: str, etype: str, before: float, after: float, reason: str,
                      by: str, reverts: int | None, rate: float | None, decisions: int | None) -> int:
        """A change made to one type's offset; its id."""
        row = conn.execute(
            "INSERT INTO threshold_changes (at, type, before, after, reason, by, reverts, rate, decisions) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (at, etype, before, after, reason, by, reverts, rate, decisions)).fetchone()
        return int(row[0])

    def mark_reverted(self, conn: Connection, change_id: int, by_change: int) -> None:
        """Change ``change_id`` was undone by change ``by_change``."""
        conn.execute("UPDATE threshold_changes SET reverted_by = ? WHERE id = ?", (by_change, change_id))

    def change(self, change_id: int, conn: Connection | None = None) -> ThresholdChange | None:
        row = self._read(conn).execute("SELECT * FROM threshold_changes WHERE id = ?", (change_id,)).fetchone()
        return None if row is None else _change(row)

    def changes(self, ids: list[int], conn: Connection | None = None) -> list[ThresholdChange]:
        """These changes, oldest first."""
        if not ids:
            return []
        rows = self._read(conn).execute(
            f"SELECT * FROM threshold_changes WHERE id IN ({marks(ids)}) ORDER BY id", ids)
        return [_change(row) for row in rows]

    def history(self, limit: int, conn: Connection | None = None) -> list[ThresholdChange]:
        """The latest ``limit`` changes, newest first."""
        rows = self._read(conn).execute("SELECT * FROM threshold_changes ORDER BY id DESC LIMIT ?", (int(limit),))
        return [_change(row) for row in rows]

    # --- outcomes ---
    def record_outcome(self, conn: Connection, at: str, escalation_id: str | None, etype: str, outcome: str,
                       by: str, note: str | None) -> None:
        """Mark an outcome; a later mark of the same escalation replaces the earlier one (and is
        unused by any adjustment again)."""
        conn.execute("INSERT INTO outcomes (at, escalation_id, type, outcome, by, note) VALUES (?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (escalation_id) WHERE escalation_id IS NOT NULL DO UPDATE SET at = excluded.at, "
                     "outcome = excluded.outcome, by = excluded.by, note = excluded.note, adjustment = NULL",
                     (at, escalation_id, etype, outcome, by, note))

    def outcome_of(self, escalation_id: str, conn: Connection | None = None) -> OutcomeMark | None:
        """The outcome marked on one escalation, if any."""
        row = self._read(conn).execute("SELECT outcome, by, at, note FROM outcomes WHERE escalation_id = ?",
                                       (escalation_id,)).fetchone()
        return None if row is None else OutcomeMark(outcome=row[0], by=row[1], at=row[2], note=row[3])

    def outcomes(self, since: str | None = None, conn: Connection | None = None) -> list[Outcome]:
        """Every outcome (or those marked at or after ``since``), oldest first."""
        where, params = ("at >= ?", (since,)) if since else ("1=1", ())
        rows = self._read(conn).execute(f"SELECT * FROM outcomes WHERE {where} ORDER BY id", params)
        return [_outcome(row) for row in rows]

    # --- what an adjustment measures and marks ---
    def latest_decisions(self, conn: Connection, size: int) -> list[tuple[str, str | None]]:
        """(type, outcome) of the latest ``size`` evaluated requests, newest first."""
        rows = conn.execute("SELECT type, outcome FROM decisions ORDER BY id DESC LIMIT ?", (size,))
        return [(str(row[0]), row[1]) for row in rows]

    def unused_outcomes(self, conn: Connection) -> list[tuple[str, str]]:
        """(type, outcome) of the outcomes no adjustment has used yet."""
        rows = conn.execute("SELECT type, outcome FROM outcomes WHERE adjustment IS NULL")
        return [(str(row[0]), str(row[1])) for row in rows]

    def use_outcomes(self, conn: Connection, adjustment: int) -> None:
        """The unused outcomes were used by the adjustment that made change ``adjustment`` (0: none)."""
        conn.execute("UPDATE outcomes SET adjustment = ? WHERE adjustment IS NULL", (adjustment,))

    def reset_pending(self, conn: Connection) -> None:
        """No decisions since the last adjustment."""
        conn.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT (name) DO UPDATE SET value = 0", (PENDING,))

    def count_pending(self, conn: Connection) -> int:
        """One more decision since the last adjustment; how many there are now."""
        conn.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
                     (PENDING,))
        return int(conn.execute("SELECT value FROM counters WHERE name = ?", (PENDING,)).fetchone()[0])


def _change(row: Row) -> ThresholdChange:
    return ThresholdChange(
        id=row["id"], at=row["at"], type=row["type"], before=row["before"], after=row["after"], reason=row["reason"],
        by=row["by"], reverts=row["reverts"], reverted_by=row["reverted_by"], rate=row["rate"],
        decisions=row["decisions"])


def _outcome(row: Row) -> Outcome:
    return Outcome(id=row["id"], at=row["at"], escalation_id=row["escalation_id"], type=row["type"],
                   outcome=row["outcome"], by=row["by"], note=row["note"], adjustment=row["adjustment"])
