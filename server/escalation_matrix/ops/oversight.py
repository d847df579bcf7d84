"""Actor oversight: each answer an actor gives to an escalation that carries the agent's
suggestion is a decision scored +1 (the actor chose the suggestion) or -1 (it chose otherwise). An
actor's score is the share of agreements over its last ``window`` decisions, 0-100 (no decisions:
100). A rule of policies/oversight.yaml whose score falls below its threshold opens a ticket: an
escalation record of its own (source ``oversight``), routed by the routing table's severity route
to the first holder of the actor's team chain. The chain's hops, suspensions and reinstatements
live in ``oversight_chain``.

Everything happens inside the caller's transaction and writes its audit entries there, so a
decision, its score, a ticket and a suspension are recorded together or not at all."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..errors import InputError, NotFoundError, StateError
from ..queries.oversight import Suspension
from ..store import Store, iso
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
            if self.store.oversight.is_scored(conn, escalation_id):
                raise StateError(f"the decision on {escalation_id} is already scored; each escalation counts once")
        held = current_suspension(self.store, conn, actor)
        if held and not allow_suspended:
            raise StateError(f"{actor} is suspended until {held['until']}; {held['replacement']} decides in its place")
        delta = 1 if same_choice(suggestion, choice) else -1
        before = self.store.oversight.actor(actor, conn)
        now = self.store.now()
        redact = self.store.redactor.text
        decision_id = self.store.oversight.add_decision(conn, actor, now, escalation_id, redact(suggestion),
                                                        redact(choice), delta)
        score, count = rolling_score(self.store, conn, actor, self.rules.window)
        self.store.oversight.set_decision_score(conn, decision_id, score)
        total = (before.decisions if before else 0) + 1
        self.store.oversight.save_actor(conn, actor, score, total, now)
        self.store.audit(conn, "actor_score", SOURCE, escalation_id=escalation_id,
                         data={"actor": actor, "delta": delta, "score_before": before.score if before else 100.0,
                               "score": score, "decisions": total})
        tickets = [t for rule in self.rules.rules if (t := self._check_rule(conn, actor, rule, score, count))]
        return {"actor": actor, "delta": delta, "score": score, "decisions": total, "ticket": tickets[0] if tickets else None}

    def score_answer(self, conn: sqlite3.Connection, record: dict[str, Any], allow_suspended: bool = False) -> dict[str, Any] | None:
        """Score an answered escalation that carries a suggestion; None when there is nothing to score."""
        suggestion = suggestion_of(record)
        if not suggestion or not record.get("answered_by") or not record.get("answer"):
            return None
        if self.store.oversight.is_scored(conn, record["id"]):
            return None
        return self.record_in(conn, record["answered_by"], suggestion[:MAX_TEXT], record["answer"][:MAX_TEXT],
                              record["id"], allow_suspended=allow_suspended)

    def catch_up(self, conn: sqlite3.Connection, now: datetime) -> int:
        """Score answers given through paths that do not score at once (the agent's respond tool)."""
        done = 0
        for esc_id in self.store.oversight.unscored_answers(conn, iso(now - CATCH_UP)):
            done += self.score_answer(conn, self.store.escalation(esc_id, conn), allow_suspended=True) is not None
        return done

    # --- rules and tickets ---
    def _check_rule(self, conn: sqlite3.Connection, actor: str, rule: OversightRule, score: float,
                    count: int) -> str | None:
        if rule.within is None:
            rule_score, n = score, count
        else:
            since = iso(self.store.clock() - rule.within)
            rule_score, n = rolling_score(self.store, conn, actor, self.rules.window, since)
        if n < rule.min_decisions or rule_score >= rule.score_below:
            return None
        if open_ticket(self.store, conn, actor) or _suspended(self.store, conn, actor):
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
        self.store.oversight.add_ticket(conn, esc_id, actor, rule.name, team_name, iso(now), rule_score)
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
        return [self._view(n) for n in self.store.oversight.actor_names()]

    def actor(self, name: str, recent: int = 20) -> dict[str, Any]:
        name = _name(name)
        if self.store.oversight.actor(name) is None:
            raise NotFoundError(f"no actor {name!r} has decisions or suspensions yet; `escalation-matrix actors list` "
                                "shows those that have")
        view = self._view(name).model_dump()
        view["recent_decisions"] = self.store.oversight.recent_decisions(name, recent)
        view["tickets"] = [self.ticket(esc_id) for esc_id in self.store.oversight.ticket_ids(name)]
        view["suspensions"] = suspensions(self.store, name)
        view["chain"] = chain_of(self.rules, name)
        return view

    def ticket(self, esc_id: str, conn: sqlite3.Connection | None = None) -> dict[str, Any] | None:
        """What an oversight ticket is about and where it stands in its chain; None for other records."""
        found = self.store.oversight.ticket(esc_id, conn)
        if found is None:
            return None
        ticket: dict[str, Any] = dict(found)
        chain = self.rules.teams.get(ticket["team"]) or self.rules.team_of(ticket["actor"])[1]
        step = chain.chain[min(ticket["step"], len(chain.chain) - 1)]
        ticket.update(id=esc_id, holder=ticket["assignee"], role=step.role,
                      chain=[{"role": s.role, "actor": s.actor, "stage": stage_name(s.role) if i else "created",
                              "answer_within": format_duration(s.answer_within) if s.answer_within else None}
                             for i, s in enumerate(chain.chain)],
                      suspensions=[s for s in suspensions(self.store, ticket["actor"], conn) if s["ticket"] == esc_id])
        return ticket

    def _view(self, name: str) -> ActorView:
        found = self.store.oversight.actor(name)
        held = _suspended(self.store, None, name)
        return ActorView(name=name, team=self.rules.team_of(name)[0], score=found.score if found else 100.0,
                         decisions=found.decisions if found else 0, window=self.rules.window,
                         status="suspended" if held else "active", suspended_until=held["until"] if held else None,
                         replacement=held["replacement"] if held else None,
                         open_ticket=open_ticket(self.store, None, name), updated_at=found.updated_at if found else None)


def rolling_score(store: Store, conn: sqlite3.Connection, actor: str, window: int,
                  since: str | None = None) -> tuple[float, int]:
    """(score 0-100, decisions counted) over the actor's last ``window`` decisions (since ``since``)."""
    deltas = store.oversight.recent_deltas(conn, actor, window, since)
    if not deltas:
        return 100.0, 0
    return round(50 + 50 * sum(deltas) / len(deltas), 1), len(deltas)


def open_ticket(store: Store, conn: sqlite3.Connection | None, actor: str) -> str | None:
    """The open oversight ticket about the actor, if any."""
    return store.oversight.open_ticket(actor, conn)


def _suspended(store: Store, conn: sqlite3.Connection | None, actor: str) -> Suspension | None:
    from .oversight_chain import current_suspension

    return current_suspension(store, conn, actor)


def suspensions(store: Store, actor: str | None = None, conn: sqlite3.Connection | None = None) -> list[Suspension]:
    """Every suspension (of one actor), newest first."""
    return store.oversight.suspensions(actor, conn)


def chain_of(rules: OversightFile, actor: str) -> dict[str, Any]:
    team_name, team = rules.team_of(actor)
    return {"team": team_name, "replacement": team.stand_in,
            "steps": [{"role": s.role, "actor": s.actor,
                       "answer_within": format_duration(s.answer_within) if s.answer_within else None} for s in team.chain]}

