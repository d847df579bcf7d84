"""Actor oversight: actors and their rolling scores (``actors``), each scored decision
(``actor_decisions``), the tickets a low score opened (``oversight_tickets``) and the suspensions
with their stand-in (``actor_suspensions``). Writes run in the caller's transaction, so a decision,
its score, a ticket and a suspension are recorded together or not at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict

from .base import OPEN_STATUSES, Connection, Queries, Row, marks


@dataclass(frozen=True)
class Actor:
    name: str
    score: float
    decisions: int
    updated_at: str


class ActorDecision(TypedDict):
    """One scored decision as an actor's view lists it."""

    at: str
    escalation_id: str | None
    suggestion: str
    choice: str
    delta: int
    score: float


class Ticket(TypedDict):
    """An oversight ticket: the escalation about an actor, the rule that opened it, the team whose
    chain it follows and its step there."""

    escalation_id: str
    actor: str
    rule: str
    team: str
    step: int
    step_at: str
    score: float
    opened_at: str


class TicketState(Ticket):
    """A ticket with its escalation's status and current holder."""

    status: str
    assignee: str | None


class Suspension(TypedDict):
    id: int
    actor: str
    ticket: str | None
    replacement: str
    reason: str | None
    suspended_by: str
    suspended_at: str
    until: str
    moved: list[str]  # the open items moved to the replacement
    reinstated_at: str | None
    reinstated_by: str | None


@dataclass(frozen=True)
class CooldownEnd:
    """A suspension whose cool-down has passed."""

    actor: str
    until: str
    ticket: str | None


class OversightQueries(Queries):
    # --- actors and decisions ---
    def actor(self, name: str, conn: Connection | None = None) -> Actor | None:
        row = self._read(conn).execute("SELECT * FROM actors WHERE name = ?", (name,)).fetchone()
        return None if row is None else Actor(row["name"], float(row["score"]), int(row["decisions"]), row["updated_at"])

    def actor_names(self, conn: Connection | None = None) -> list[str]:
        return [str(row[0]) for row in self._read(conn).execute("SELECT name FROM actors ORDER BY name")]

    def save_actor(self, conn: Connection, name: str, score: float, decisions: int, at: str) -> None:
        conn.execute("INSERT INTO actors (name, score, decisions, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) "
                     "DO UPDATE SET score = excluded.score, decisions = excluded.decisions, updated_at = excluded.updated_at",
                     (name, score, decisions, at))

    def ensure_actor(self, conn: Connection, name: str) -> None:
        """An actor row (score 100, no decisions) unless there is one."""
        conn.execute("INSERT INTO actors (name, score, decisions, updated_at) VALUES (?, 100, 0, ?) "
                     "ON CONFLICT(name) DO NOTHING", (name, self._now()))

    def is_scored(self, conn: Connection, escalation_id: str) -> bool:
        """Whether the decision on this escalation is already scored (each counts once)."""
        return conn.execute("SELECT 1 FROM actor_decisions WHERE escalation_id = ?",
                            (escalation_id,)).fetchone() is not None

    def add_decision(self, conn: Connection, actor: str, at: str, escalation_id: str | None, suggestion: str,
                     choice: str, delta: int) -> int:
        """A scored decision (its score is set by ``set_decision_score`` once computed); its id."""
        row = conn.execute("INSERT INTO actor_decisions (actor, at, escalation_id, suggestion, choice, delta, score) "
                           "VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id",
                           (actor, at, escalation_id, suggestion, choice, delta)).fetchone()
        return int(row[0])

    def set_decision_score(self, conn: Connection, decision_id: int, score: float) -> None:
        conn.execute("UPDATE actor_decisions SET score = ? WHERE id = ?", (score, decision_id))

    def recent_deltas(self, conn: Connection, actor: str, window: int, since: str | None = None) -> list[int]:
        """The +1/-1 of the actor's last ``window`` decisions (made at or after ``since``), newest first."""
        where, params = "actor = ?", [actor]
        if since:
            where += " AND at >= ?"
            params.append(since)
        rows = conn.execute(f"SELECT delta FROM actor_decisions WHERE {where} ORDER BY id DESC LIMIT ?",
                            [*params, window])
        return [int(row[0]) for row in rows]

    def recent_decisions(self, actor: str, limit: int, conn: Connection | None = None) -> list[ActorDecision]:
        rows = self._read(conn).execute(
            "SELECT at, escalation_id, suggestion, choice, delta, score FROM actor_decisions WHERE actor = ? "
            "ORDER BY id DESC LIMIT ?", (actor, limit))
        return [ActorDecision(at=r["at"], escalation_id=r["escalation_id"], suggestion=r["suggestion"],
                              choice=r["choice"], delta=r["delta"], score=r["score"]) for r in rows]

    def unscored_answers(self, conn: Connection, since: str) -> list[str]:
        """Escalations answered since ``since`` that carry a suggestion and whose decision is not
        scored yet, oldest answer first."""
        rows = conn.execute(
            "SELECT id FROM escalations WHERE answered_at >= ? AND answered_by IS NOT NULL AND answer IS NOT NULL "
            "AND (suggestion IS NOT NULL OR json_extract(context, '$.suggestion') IS NOT NULL) "
            "AND id NOT IN (SELECT escalation_id FROM actor_decisions WHERE escalation_id IS NOT NULL) "
            "ORDER BY answered_at", (since,)).fetchall()
        return [str(row[0]) for row in rows]

    # --- tickets ---
    def add_ticket(self, conn: Connection, escalation_id: str, actor: str, rule: str, team: str, at: str,
                   score: float) -> None:
        conn.execute("INSERT INTO oversight_tickets (escalation_id, actor, rule, team, step, step_at, score, opened_at) "
                     "VALUES (?, ?, ?, ?, 0, ?, ?, ?)", (escalation_id, actor, rule, team, at, score, at))

    def open_ticket(self, actor: str, conn: Connection | None = None) -> str | None:
        """The newest open ticket about the actor, if any."""
        row = self._read(conn).execute(
            f"SELECT t.escalation_id FROM oversight_tickets t JOIN escalations e ON e.id = t.escalation_id "
            f"WHERE t.actor = ? AND e.status IN ({marks(OPEN_STATUSES)}) ORDER BY t.opened_at DESC LIMIT 1",
            (actor, *OPEN_STATUSES)).fetchone()
        return None if row is None else str(row[0])

    def ticket_ids(self, actor: str, conn: Connection | None = None) -> list[str]:
        """Every ticket about the actor, newest first."""
        rows = self._read(conn).execute(
            "SELECT escalation_id FROM oversight_tickets WHERE actor = ? ORDER BY opened_at DESC", (actor,))
        return [str(row[0]) for row in rows]

    def ticket(self, escalation_id: str, conn: Connection | None = None) -> TicketState | None:
        row = self._read(conn).execute(
            "SELECT t.*, e.status, e.assignee FROM oversight_tickets t JOIN escalations e "
            "ON e.id = t.escalation_id WHERE t.escalation_id = ?", (escalation_id,)).fetchone()
        return None if row is None else TicketState(**_ticket(row), status=row["status"], assignee=row["assignee"])

    def ticket_about(self, conn: Connection, escalation_id: str) -> str | None:
        """The actor an oversight ticket is about; None when the escalation is no ticket."""
        row = conn.execute("SELECT actor FROM oversight_tickets WHERE escalation_id = ?", (escalation_id,)).fetchone()
        return None if row is None else str(row[0])

    def open_tickets(self, conn: Connection) -> list[Ticket]:
        """Tickets whose escalation is open, oldest first."""
        rows = conn.execute(f"SELECT t.* FROM oversight_tickets t JOIN escalations e ON e.id = t.escalation_id "
                            f"WHERE e.status IN ({marks(OPEN_STATUSES)}) ORDER BY t.opened_at", OPEN_STATUSES).fetchall()
        return [_ticket(row) for row in rows]

    def move_ticket(self, conn: Connection, escalation_id: str, step: int, step_at: str) -> None:
        """The ticket reached ``step`` of its chain at ``step_at``."""
        conn.execute("UPDATE oversight_tickets SET step = ?, step_at = ? WHERE escalation_id = ?",
                     (step, step_at, escalation_id))

    # --- suspensions ---
    def current_suspension(self, actor: str, conn: Connection | None = None) -> Suspension | None:
        """The actor's suspension in force, if any."""
        row = self._read(conn).execute("SELECT * FROM actor_suspensions WHERE actor = ? AND reinstated_at IS NULL "
                           "ORDER BY id DESC LIMIT 1", (actor,)).fetchone()
        return None if row is None else _suspension(row)

    def suspensions(self, actor: str | None = None, conn: Connection | None = None) -> list[Suspension]:
        """Every suspension (of one actor), newest first."""
        where, params = ("actor = ?", (actor,)) if actor else ("1=1", ())
        rows = self._read(conn).execute(
            f"SELECT * FROM actor_suspensions WHERE {where} ORDER BY suspended_at DESC, id DESC", params)
        return [_suspension(row) for row in rows]

    def add_suspension(self, conn: Connection, actor: str, ticket: str | None, replacement: str, reason: str,
                       by: str, at: str, until: str, moved: list[str]) -> None:
        conn.execute("INSERT INTO actor_suspensions (actor, ticket, replacement, reason, suspended_by, suspended_at, "
                     "until, moved) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (actor, ticket, replacement, reason, by, at, until, json.dumps(moved)))

    def end_suspension(self, conn: Connection, suspension_id: int, at: str, by: str) -> None:
        conn.execute("UPDATE actor_suspensions SET reinstated_at = ?, reinstated_by = ? WHERE id = ?",
                     (at, by, suspension_id))

    def ended_cooldowns(self, conn: Connection, now: str) -> list[CooldownEnd]:
        """Suspensions in force whose cool-down ended by ``now``, in the order they ended."""
        rows = conn.execute("SELECT actor, until, ticket FROM actor_suspensions WHERE reinstated_at IS NULL "
                            "AND until <= ? ORDER BY until", (now,)).fetchall()
        return [CooldownEnd(row["actor"], row["until"], row["ticket"]) for row in rows]


def _ticket(row: Row) -> Ticket:
    return Ticket(escalation_id=row["escalation_id"], actor=row["actor"], rule=row["rule"], team=row["team"],
                  step=row["step"], step_at=row["step_at"], score=row["score"], opened_at=row["opened_at"])


def _suspension(row: Row) -> Suspension:
    return Suspension(id=row["id"], actor=row["actor"], ticket=row["ticket"], replacement=row["replacement"],
                      reason=row["reason"], suspended_by=row["suspended_by"], suspended_at=row["suspended_at"],
                      until=row["until"], moved=json.loads(row["moved"]), reinstated_at=row["reinstated_at"],
                      reinstated_by=row["reinstated_by"])
