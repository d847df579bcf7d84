"""The figures of a period's report (``ops.reports``, ``ops.decision_metrics``,
``ops.oversight_report``): the decision log by day, severity and outcome; the records created and
their resolution times; answered escalations; outcomes and threshold changes; actors' decisions,
tickets and suspensions. Read-only; every period is ``[start, end)`` in ISO timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from .base import OPEN_STATUSES, Connection, Queries, marks


@dataclass(frozen=True)
class DecisionCount:
    """Evaluated requests of one day, severity and outcome (created, repeated, reasked, refused, proceed ...)."""

    day: str
    severity: str | None
    outcome: str
    total: int


class CreatedRecord(TypedDict):
    """A record created in the period, with when it was resolved (``done_at``, null while it is not)."""

    source: str
    type: str
    reason: str | None
    level: int
    severity: str
    status: str
    resolution_method: str | None
    created_at: str
    done_at: str | None


class BlockedRecord(TypedDict):
    id: str
    conversation_id: str | None
    task_id: str | None
    type: str
    severity: str
    level: int
    assignee: str | None
    reason: str | None
    blocked_at: str | None


@dataclass(frozen=True)
class AnsweredRecord:
    """An escalation created in the period that a person answered (``options`` and ``context`` as stored JSON)."""

    created_at: str
    answered_at: str
    answer: str | None
    options: str | None
    context: str | None
    response_action: str | None


@dataclass(frozen=True)
class ActorDecisionCount:
    actor: str
    delta: int
    total: int


@dataclass(frozen=True)
class Suspension:
    actor: str
    replacement: str
    suspended_at: str
    until: str
    reinstated_at: str | None
    reinstated_by: str | None
    moved: str  # a JSON list of the escalation ids moved to the replacement
    ticket: str | None


class ReportQueries(Queries):
    def decision_counts(self, start: str, end: str, conn: Connection | None = None) -> list[DecisionCount]:
        """The decision log grouped by day, severity and outcome. Decisions logged before outcomes
        were kept count as proceed or created by their action."""
        outcome = "COALESCE(outcome, CASE WHEN action = 'proceed' THEN 'proceed' ELSE 'created' END)"
        rows = self._read(conn).execute(
            f"SELECT substr(at, 1, 10), severity, {outcome}, COUNT(*) FROM decisions "
            "WHERE at >= ? AND at < ? GROUP BY 1, 2, 3", (start, end))
        return [DecisionCount(row[0], row[1], row[2], int(row[3])) for row in rows]

    def created(self, start: str, end: str, conn: Connection | None = None) -> list[CreatedRecord]:
        """Records created in the period. Records from before ``resolved_at`` was kept fall back to
        answered_at, closed_at or (when resolved) updated_at."""
        rows = self._read(conn).execute(
            "SELECT source, type, reason, level, severity, status, resolution_method, created_at, "
            "COALESCE(resolved_at, answered_at, closed_at, CASE WHEN status = 'resolved' THEN updated_at END) AS done_at "
            "FROM escalations WHERE created_at >= ? AND created_at < ?", (start, end))
        return [CreatedRecord(source=r["source"], type=r["type"], reason=r["reason"], level=r["level"],
                              severity=r["severity"], status=r["status"], resolution_method=r["resolution_method"],
                              created_at=r["created_at"], done_at=r["done_at"]) for r in rows]

    def open_before(self, end: str, conn: Connection | None = None) -> int:
        """Records created before ``end`` that are open now."""
        row = self._read(conn).execute(
            f"SELECT COUNT(*) FROM escalations WHERE created_at < ? AND status IN ({marks(OPEN_STATUSES)})",
            (end, *OPEN_STATUSES)).fetchone()
        return int(row[0])

    def blocked(self, conn: Connection | None = None) -> list[BlockedRecord]:
        """Every blocked record, longest blocked first."""
        rows = self._read(conn).execute(
            "SELECT id, conversation_id, task_id, type, severity, level, assignee, reason, blocked_at FROM escalations "
            "WHERE status = 'blocked' ORDER BY blocked_at")
        return [BlockedRecord(id=r["id"], conversation_id=r["conversation_id"], task_id=r["task_id"], type=r["type"],
                              severity=r["severity"], level=r["level"], assignee=r["assignee"], reason=r["reason"],
                              blocked_at=r["blocked_at"]) for r in rows]

    def answered(self, start: str, end: str, conn: Connection | None = None) -> list[AnsweredRecord]:
        rows = self._read(conn).execute(
            "SELECT created_at, answered_at, answer, options, context, response_action FROM escalations "
            "WHERE created_at >= ? AND created_at < ? AND answered_at IS NOT NULL", (start, end))
        return [AnsweredRecord(r["created_at"], r["answered_at"], r["answer"], r["options"], r["context"],
                               r["response_action"]) for r in rows]

    def outcome_counts(self, start: str, end: str, conn: Connection | None = None) -> dict[str, int]:
        """Outcomes recorded in the period (necessary, unnecessary, missed) by kind."""
        rows = self._read(conn).execute(
            "SELECT outcome, COUNT(*) FROM outcomes WHERE at >= ? AND at < ? GROUP BY outcome", (start, end))
        return {str(row[0]): int(row[1]) for row in rows}

    def threshold_changes(self, start: str, end: str, conn: Connection | None = None) -> int:
        row = self._read(conn).execute("SELECT COUNT(*) FROM threshold_changes WHERE at >= ? AND at < ?",
                                       (start, end)).fetchone()
        return int(row[0])

    def actor_decisions(self, start: str, end: str, conn: Connection | None = None) -> list[ActorDecisionCount]:
        """Actors' scored decisions in the period, by actor and delta (+1 agreed, -1 not)."""
        rows = self._read(conn).execute("SELECT actor, delta, COUNT(*) FROM actor_decisions WHERE at >= ? AND at < ? "
                                        "GROUP BY actor, delta", (start, end))
        return [ActorDecisionCount(row[0], int(row[1]), int(row[2])) for row in rows]

    def tickets_opened(self, start: str, end: str, conn: Connection | None = None) -> dict[str, int]:
        """Oversight tickets opened in the period, by actor."""
        rows = self._read(conn).execute("SELECT actor, COUNT(*) FROM oversight_tickets WHERE opened_at >= ? "
                                        "AND opened_at < ? GROUP BY actor", (start, end))
        return {str(row[0]): int(row[1]) for row in rows}

    def suspensions_begun(self, start: str, end: str, conn: Connection | None = None) -> dict[str, int]:
        """Suspensions that began in the period, by actor."""
        rows = self._read(conn).execute("SELECT actor, COUNT(*) FROM actor_suspensions WHERE suspended_at >= ? AND "
                                        "suspended_at < ? GROUP BY actor", (start, end))
        return {str(row[0]): int(row[1]) for row in rows}

    def score_before(self, actor: str, end: str, conn: Connection | None = None) -> float | None:
        """The actor's rolling score after its last decision before ``end``."""
        row = self._read(conn).execute(
            "SELECT score FROM actor_decisions WHERE actor = ? AND at < ? ORDER BY id DESC LIMIT 1",
            (actor, end)).fetchone()
        return None if row is None else float(row[0])

    def suspensions_overlapping(self, start: str, end: str, conn: Connection | None = None) -> list[Suspension]:
        """Suspensions in force at some time in the period, oldest first."""
        rows = self._read(conn).execute(
            "SELECT * FROM actor_suspensions WHERE suspended_at < ? AND COALESCE(reinstated_at, until) >= ? "
            "ORDER BY suspended_at, id", (end, start))
        return [Suspension(r["actor"], r["replacement"], r["suspended_at"], r["until"], r["reinstated_at"],
                           r["reinstated_by"], r["moved"], r["ticket"]) for r in rows]
