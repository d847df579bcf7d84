"""Actor oversight (seed 003): each answer an actor gives to an escalation that carries the agent's
suggestion is a decision scored +1 (the actor chose the suggestion) or -1 (it chose otherwise). An
actor's score is the share of agreements over its last ``window`` decisions, 0-100 (no decisions:
100). A rule of policies/oversight.yaml whose score falls below its threshold opens a ticket: an
escalation record of its own (source ``oversight``), routed by the routing table's severity route
to the first holder of the actor's team chain. The chain's hops, suspensions and reinstatements
live in ``oversight_chain``.

Everything happens inside the caller's transaction and writes its audit entries there, so a
decision, its score, a ticket and a suspension are recorded together or not at all."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..errors import InputError, NotFoundError, StateError
from ..store import OPEN_STATUSES, Store, iso
from . import notify
from ..oversight_policy import OversightFile, OversightRule, stage_name
from ..durations import duration_label, format_duration
from ..ops_policy import OperationsFile

if TYPE_CHECKING:
    from ..loader import Policy

SOURCE = "oversight"
MAX_TEXT = 500
CATCH_UP = timedelta(days=7)  # answers given through other paths (the agent's respond tool) are scored by the sweep


class ActorView(BaseModel):
    """One actor as the CLI, the console and the ``escalation://actors`` resource show it."""

    name: str = Field(description="The actor: a person, team or agent that answers escalations.")
    team: str = Field(description="Its team in oversight.yaml (default when not listed).")
    score: float = Field(description="Rolling score 0-100: the share of its last `window` decisions that chose the suggestion.")
    decisions: int = Field(description="Decisions scored so far.")
    window: int = Field(description="Decisions in the rolling score.")
    status: str = Field(description="active or suspended.")
    suspended_until: str | None = Field(default=None, description="End of the cool-down while suspended.")
    replacement: str | None = Field(default=None, description="Who holds its items while it is suspended.")
    open_ticket: str | None = Field(default=None, description="The open oversight ticket about it, if any.")
    updated_at: str | None = Field(default=None, description="Last score change.")


def same_choice(suggestion: str, choice: str) -> bool:
    """Agreement ignores case, spacing and a final full stop: 'Approve' = ' approve.'."""
    def norm(text: str) -> str:
        return " ".join(text.casefold().split()).rstrip(".!")

    return norm(suggestion) == norm(choice)


def suggestion_of(record: dict[str, Any]) -> str | None:
    """The agent's suggestion on a record: the column, else ``context.suggestion``."""
    found = record.get("suggestion")
    if not found and isinstance(record.get("context"), dict):
        found = record["context"].get("suggestion")
    return found.strip() if isinstance(found, str) and found.strip() else None


def _text(value: str, what: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise InputError(f"{what} is empty; give the option as it was written")
    if len(value) > MAX_TEXT:
        raise InputError(f"{what} is {len(value)} characters; give at most {MAX_TEXT}")
    return value


def _name(value: str) -> str:
    value = " ".join((value or "").split())
    if not value or len(value) > 120:
        raise InputError("give the actor's name (1-120 characters), e.g. clark or grants-backup-ai")
    return value


class Oversight:
    """Scores, tickets and suspensions over one store and policy."""

    def __init__(self, store: Store, policy: Policy):
        self.store = store
        self.policy = policy
        self.rules: OversightFile = policy.oversight
        self.ops: OperationsFile = policy.operations

    # --- decisions and scores ---
    def record(self, actor: str, suggestion: str, choice: str, escalation_id: str | None = None) -> dict[str, Any]:
        """Record one decision (the actor chose ``choice`` where the agent suggested ``suggestion``)."""
        with self.store.transaction() as conn:
            return self.record_in(conn, _name(actor), _text(suggestion, "the suggestion"), _text(choice, "the choice"),
                                  escalation_id)

    def record_in(self, conn: sqlite3.Connection, actor: str, suggestion: str, choice: str,
                  escalation_id: str | None = None, allow_suspended: bool = False) -> dict[str, Any]:
        from .oversight_chain import current_suspension

        if escalation_id is not None:
            self.store.escalation(escalation_id, conn)  # raises NotFoundError with a hint
            if conn.execute("SELECT 1 FROM actor_decisions WHERE escalation_id = ?", (escalation_id,)).fetchone():
                raise StateError(f"the decision on {escalation_id} is already scored; each escalation counts once")
        held = current_suspension(conn, actor)
        if held and not allow_suspended:
            raise StateError(f"{actor} is suspended until {held['until']}; {held['replacement']} decides in its place")
        delta = 1 if same_choice(suggestion, choice) else -1
        before = self._row(conn, actor)
        now = self.store.now()
        redact = self.store.redactor.text
        cur = conn.execute("INSERT INTO actor_decisions (actor, at, escalation_id, suggestion, choice, delta, score) "
                           "VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id", (actor, now, escalation_id, redact(suggestion), redact(choice), delta))
        decision_id = cur.fetchone()[0]
        score, count = rolling_score(conn, actor, self.rules.window)
        conn.execute("UPDATE actor_decisions SET score = ? WHERE id = ?", (score, decision_id))
        total = (before["decisions"] if before else 0) + 1
        conn.execute("INSERT INTO actors (name, score, decisions, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) "
                     "DO UPDATE SET score = excluded.score, decisions = excluded.decisions, updated_at = excluded.updated_at",
                     (actor, score, total, now))
        self.store.audit(conn, "actor_score", SOURCE, escalation_id=escalation_id,
                         data={"actor": actor, "delta": delta, "score_before": before["score"] if before else 100.0,
                               "score": score, "decisions": total})
        tickets = [t for rule in self.rules.rules if (t := self._check_rule(conn, actor, rule, score, count))]
        return {"actor": actor, "delta": delta, "score": score, "decisions": total, "ticket": tickets[0] if tickets else None}

    def score_answer(self, conn: sqlite3.Connection, record: dict[str, Any], allow_suspended: bool = False) -> dict[str, Any] | None:
        """Score an answered escalation that carries a suggestion; None when there is nothing to score."""
        suggestion = suggestion_of(record)
        if not suggestion or not record.get("answered_by") or not record.get("answer"):
            return None
        if conn.execute("SELECT 1 FROM actor_decisions WHERE escalation_id = ?", (record["id"],)).fetchone():
            return None
        return self.record_in(conn, record["answered_by"], suggestion[:MAX_TEXT], record["answer"][:MAX_TEXT],
                              record["id"], allow_suspended=allow_suspended)

    def catch_up(self, conn: sqlite3.Connection, now: datetime) -> int:
        """Score answers given through paths that do not score at once (the agent's respond tool)."""
        rows = conn.execute(
            "SELECT id FROM escalations WHERE answered_at >= ? AND answered_by IS NOT NULL AND answer IS NOT NULL "
            "AND (suggestion IS NOT NULL OR json_extract(context, '$.suggestion') IS NOT NULL) "
            "AND id NOT IN (SELECT escalation_id FROM actor_decisions WHERE escalation_id IS NOT NULL) "
            "ORDER BY answered_at", (iso(now - CATCH_UP),)).fetchall()
        done = 0
        for row in rows:
            done += self.score_answer(conn, self.store.escalation(row[0], conn), allow_suspended=True) is not None
        return done

    def _row(self, conn: sqlite3.Connection, actor: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT * FROM actors WHERE name = ?", (actor,)).fetchone()
        return dict(row) if row else None

    # --- rules and tickets ---
    def _check_rule(self, conn: sqlite3.Connection, actor: str, rule: OversightRule, score: float,
                    count: int) -> str | None:
        if rule.within is None:
            rule_score, n = score, count
        else:
            since = iso(self.store.clock() - rule.within)
            rule_score, n = rolling_score(conn, actor, self.rules.window, since)
        if n < rule.min_decisions or rule_score >= rule.score_below:
            return None
        if open_ticket(conn, actor) or _suspended(conn, actor):
            return None  # one ticket at a time; a suspended actor is already handled
        return self.open_ticket(conn, actor, rule, rule_score, n, score)

    def open_ticket(self, conn: sqlite3.Connection, actor: str, rule: OversightRule, rule_score: float, n: int,
                    score: float) -> str:
        team_name, team = self.rules.team_of(actor)
        route = self.ops.routing[rule.severity]
        first = team.chain[0]
        now = self.store.clock()
        due = now + (first.answer_within or route.respond_within)
        period = f" in the last {duration_label(rule.within)}" if rule.within else ""
        reason = (f"Low performance score for {actor}: {rule_score:.0f} over {n} decisions{period}, below "
                  f"{rule.score_below:g} (rule {rule.name})")
        chain = " -> ".join(f"{s.role} {s.actor}" for s in team.chain)
        details = (f"Rolling score {score:.0f} (last {self.rules.window} decisions at most). Chain: {chain}. "
                   f"Suspended at: {rule.suspend_at}; cool-down {duration_label(rule.cooldown)}.")
        fields = {"source": SOURCE, "type": rule.type.value, "trigger": self.policy.matrix.default_trigger(rule.type),
                  "severity": rule.severity.value, "level": route.level, "assignee": first.actor, "status": "open",
                  "reason": reason, "details": details, "request": reason, "due_at": iso(due), "severity_at": iso(now)}
        esc_id = self.store.insert_escalation(conn, fields)
        conn.execute("INSERT INTO oversight_tickets (escalation_id, actor, rule, team, step, step_at, score, opened_at) "
                     "VALUES (?, ?, ?, ?, 0, ?, ?, ?)", (esc_id, actor, rule.name, team_name, iso(now), rule_score, iso(now)))
        self.store.audit(conn, "escalation_created", SOURCE, escalation_id=esc_id,
                         data={"source": SOURCE, "reason": reason, "level": route.level, "severity": rule.severity.value,
                               "assignee": first.actor, "actor": actor, "rule": rule.name, "score": rule_score,
                               "role": first.role})
        record = self.store.escalation(esc_id, conn)
        notify.enqueue(self.store, conn, self.ops, [*route.notify, *first.notify], "created", record,
                       f"{reason}. For the {first.role}: answer within {duration_label(due - now)}.", first.actor)
        if rule.suspend_at == "ticket":
            from .oversight_chain import suspend_in

            suspend_in(self, conn, actor, reason=f"score below {rule.score_below:g} (rule {rule.name})",
                       by=SOURCE, cooldown=rule.cooldown, ticket=esc_id, at=now)
        return esc_id

    # --- views ---
    def actors(self) -> list[ActorView]:
        conn = self.store._conn()
        names = [r[0] for r in conn.execute("SELECT name FROM actors ORDER BY name")]
        return [self._view(conn, n) for n in names]

    def actor(self, name: str, recent: int = 20) -> dict[str, Any]:
        conn = self.store._conn()
        name = _name(name)
        if self._row(conn, name) is None:
            raise NotFoundError(f"no actor {name!r} has decisions or suspensions yet; `escalation-matrix actors list` "
                                "shows those that have")
        view = self._view(conn, name).model_dump()
        view["recent_decisions"] = [dict(r) for r in conn.execute(
            "SELECT at, escalation_id, suggestion, choice, delta, score FROM actor_decisions WHERE actor = ? "
            "ORDER BY id DESC LIMIT ?", (name, recent))]
        view["tickets"] = [self.ticket(r[0], conn) for r in conn.execute(
            "SELECT escalation_id FROM oversight_tickets WHERE actor = ? ORDER BY opened_at DESC", (name,))]
        view["suspensions"] = suspensions(conn, name)
        view["chain"] = chain_of(self.rules, name)
        return view

    def ticket(self, esc_id: str, conn: sqlite3.Connection | None = None) -> dict[str, Any] | None:
        """What an oversight ticket is about and where it stands in its chain; None for other records."""
        conn = conn or self.store._conn()
        row = conn.execute("SELECT t.*, e.status, e.assignee FROM oversight_tickets t JOIN escalations e "
                           "ON e.id = t.escalation_id WHERE t.escalation_id = ?", (esc_id,)).fetchone()
        if row is None:
            return None
        ticket = dict(row)
        chain = self.rules.teams.get(ticket["team"]) or self.rules.team_of(ticket["actor"])[1]
        step = chain.chain[min(ticket["step"], len(chain.chain) - 1)]
        ticket.update(id=esc_id, holder=ticket["assignee"], role=step.role,
                      chain=[{"role": s.role, "actor": s.actor, "stage": stage_name(s.role) if i else "created",
                              "answer_within": format_duration(s.answer_within) if s.answer_within else None}
                             for i, s in enumerate(chain.chain)],
                      suspensions=[s for s in suspensions(conn, ticket["actor"]) if s["ticket"] == esc_id])
        return ticket

    def _view(self, conn: sqlite3.Connection, name: str) -> ActorView:
        row = self._row(conn, name) or {"score": 100.0, "decisions": 0, "updated_at": None}
        held = _suspended(conn, name)
        return ActorView(name=name, team=self.rules.team_of(name)[0], score=row["score"], decisions=row["decisions"],
                         window=self.rules.window, status="suspended" if held else "active",
                         suspended_until=held["until"] if held else None,
                         replacement=held["replacement"] if held else None,
                         open_ticket=open_ticket(conn, name), updated_at=row["updated_at"])


def rolling_score(conn: sqlite3.Connection, actor: str, window: int, since: str | None = None) -> tuple[float, int]:
    """(score 0-100, decisions counted) over the actor's last ``window`` decisions (since ``since``)."""
    where, params = "actor = ?", [actor]
    if since:
        where += " AND at >= ?"
        params.append(since)
    deltas = [r[0] for r in conn.execute(f"SELECT delta FROM actor_decisions WHERE {where} ORDER BY id DESC LIMIT ?",
                                         [*params, window])]
    if not deltas:
        return 100.0, 0
    return round(50 + 50 * sum(deltas) / len(deltas), 1), len(deltas)


def open_ticket(conn: sqlite3.Connection, actor: str) -> str | None:
    marks = ", ".join("?" * len(OPEN_STATUSES))
    row = conn.execute(f"SELECT t.escalation_id FROM oversight_tickets t JOIN escalations e ON e.id = t.escalation_id "
                       f"WHERE t.actor = ? AND e.status IN ({marks}) ORDER BY t.opened_at DESC LIMIT 1",
                       (actor, *OPEN_STATUSES)).fetchone()
    return row[0] if row else None


def _suspended(conn: sqlite3.Connection, actor: str) -> dict[str, Any] | None:
    from .oversight_chain import current_suspension

    return current_suspension(conn, actor)


def suspensions(conn: sqlite3.Connection, actor: str | None = None) -> list[dict[str, Any]]:
    where, params = ("actor = ?", (actor,)) if actor else ("1=1", ())
    rows = conn.execute(f"SELECT * FROM actor_suspensions WHERE {where} ORDER BY suspended_at DESC, id DESC", params)
    return [{**dict(r), "moved": json.loads(r["moved"])} for r in rows]


def chain_of(rules: OversightFile, actor: str) -> dict[str, Any]:
    team_name, team = rules.team_of(actor)
    return {"team": team_name, "replacement": team.stand_in,
            "steps": [{"role": s.role, "actor": s.actor,
                       "answer_within": format_duration(s.answer_within) if s.answer_within else None} for s in team.chain]}

