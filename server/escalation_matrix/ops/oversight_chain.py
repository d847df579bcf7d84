"""The oversight ticket's re-routing chain and the actor's suspension.

A ticket unanswered for its holder's ``answer_within`` moves to the next step of the team's chain
(supervisor -> deputy -> director -> backup agent by default). Each hop is a fail-safe stage
(``reroute_to_<role>`` in ``failsafe_events``, so it fires once even with two sweepers), with its
audit entry and notification, dated when it was due so a sweep after downtime catches up in order.

A suspension moves every open item assigned to the actor to its team's replacement in the same
transaction, so an item is never in between: the actor can no longer answer it (``check_answerer``)
and the replacement answers it once (answering an answered record is refused). It ends when an
operator reinstates the actor or when its cool-down has passed (the sweep). Items stay with the
replacement after reinstatement; an operator can assign them back."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InputError, StateError
from ..queries.oversight import Suspension, Ticket
from ..queries.records import RecordFilter
from ..store import OPEN_STATUSES, Store, iso, parse_iso
from . import notify
from .failsafe import CATCH_UP_GRACE, Transition
from ..oversight_policy import stage_name

if TYPE_CHECKING:
    from ..loader import Policy
    from .oversight import Oversight

SOURCE = "oversight"


def current_suspension(store: Store, conn: sqlite3.Connection | None, actor: str) -> Suspension | None:
    """The actor's suspension in force, if any (``conn``: the caller's transaction)."""
    return store.oversight.current_suspension(actor, conn)


def check_answerer(store: Store, conn: sqlite3.Connection, actor: str, esc_id: str) -> None:
    """A suspended actor does not answer: its items are with the replacement. Nobody answers or
    closes the oversight ticket about themselves."""
    if store.oversight.ticket_about(conn, esc_id) == actor:
        raise StateError(f"{esc_id} is the oversight ticket about {actor}; its holder in the chain answers it, "
                         f"not {actor}")
    held = current_suspension(store, conn, actor)
    if held:
        raise StateError(f"{actor} is suspended until {held['until']} and cannot answer {esc_id}; "
                         f"{held['replacement']} answers in its place (or reinstate {actor} first)")


def check_assignee(store: Store, conn: sqlite3.Connection, actor: str) -> None:
    held = current_suspension(store, conn, actor)
    if held:
        raise StateError(f"{actor} is suspended until {held['until']}; assign it to {held['replacement']}, who "
                         f"stands in, or reinstate {actor} first")


def suspend_in(oversight: Oversight, conn: sqlite3.Connection, actor: str, *, reason: str, by: str,
               cooldown: timedelta, ticket: str | None = None, at: datetime | None = None) -> Suspension:
    store = oversight.store
    held = current_suspension(store, conn, actor)
    if held:
        raise StateError(f"{actor} is already suspended until {held['until']}")
    team_name, team = oversight.rules.team_of(actor)
    replacement = team.stand_in
    if replacement == actor:
        raise StateError(f"{actor} is the replacement of team {team_name}; set teams.{team_name}.replacement in "
                         "oversight.yaml to someone else before suspending it")
    at = at or store.clock()
    until = at + cooldown
    items = store.find_escalations(RecordFilter(assignee=actor, statuses=OPEN_STATUSES), conn=conn)
    store.oversight.ensure_actor(conn, actor)
    for item in items:  # one transaction: each item is the actor's or the replacement's, never neither
        store.update_escalation(conn, item["id"], assignee=replacement)
        store.audit(conn, "escalation_assigned", by, escalation_id=item["id"],
                    conversation_id=item.get("conversation_id"), task_id=item.get("task_id"),
                    data={"before": {"assignee": actor}, "after": {"assignee": replacement},
                          "reason": f"{actor} suspended", "actor": actor})
        moved = store.escalation(item["id"], conn)
        notify.enqueue(store, conn, oversight.ops, oversight.ops.notifications.on_change, "assigned", moved,
                       f"{actor} is suspended until {iso(until)}: this item is now with {replacement}.", replacement)
    ids = [i["id"] for i in items]
    store.oversight.add_suspension(conn, actor, ticket, replacement, store.redactor.text(reason), by, iso(at),
                                   iso(until), ids)
    store.audit(conn, "actor_suspended", by, escalation_id=ticket,
                data={"actor": actor, "replacement": replacement, "until": iso(until), "escalations": ids,
                      "reason": reason, "team": team_name})
    if ticket:
        notify.enqueue(store, conn, oversight.ops, oversight.ops.notifications.on_change, "actor_suspended",
                       store.escalation(ticket, conn),
                       f"{actor} is suspended until {iso(until)}; {len(ids)} open items moved to {replacement}.",
                       replacement)
    suspended = current_suspension(store, conn, actor)
    assert suspended is not None  # recorded just above, in this transaction
    return suspended


def reinstate_in(oversight: Oversight, conn: sqlite3.Connection, actor: str, *, by: str, reason: str,
                 at: datetime | None = None) -> dict[str, Any]:
    store = oversight.store
    held = current_suspension(store, conn, actor)
    if held is None:
        raise StateError(f"{actor} is not suspended; `escalation-matrix actors list` shows who is")
    when = iso(at or store.clock())
    store.oversight.end_suspension(conn, held["id"], when, by)
    early = parse_iso(when) < parse_iso(held["until"])
    store.audit(conn, "actor_reinstated", by, escalation_id=held["ticket"],
                data={"actor": actor, "reason": reason, "suspended_at": held["suspended_at"], "until": held["until"],
                      "early": early, "replacement": held["replacement"]})
    if held["ticket"]:
        notify.enqueue(store, conn, oversight.ops, oversight.ops.notifications.on_change, "actor_reinstated",
                       store.escalation(held["ticket"], conn), f"{actor} is reinstated ({reason}).", actor)
    return {**held, "reinstated_at": when, "reinstated_by": by}


def suspend(oversight: Oversight, actor: str, reason: str, by: str, cooldown: timedelta | None = None) -> Suspension:
    """An operator suspends an actor by hand (default cool-down: the first rule's)."""
    from .oversight import _name

    if not (reason or "").strip():
        raise InputError("give a --reason: why the actor is suspended")
    cooldown = cooldown or (oversight.rules.rules[0].cooldown if oversight.rules.rules else timedelta(hours=24))
    with oversight.store.transaction() as conn:
        return suspend_in(oversight, conn, _name(actor), reason=reason.strip(), by=by, cooldown=cooldown)


def reinstate(oversight: Oversight, actor: str, by: str, reason: str = "reinstated by an operator") -> dict[str, Any]:
    from .oversight import _name

    with oversight.store.transaction() as conn:
        return reinstate_in(oversight, conn, _name(actor), by=by, reason=(reason or "").strip() or "reinstated")


def sweep_oversight(store: Store, conn: sqlite3.Connection, policy: Policy, now: datetime) -> list[Transition]:
    """Inside the fail-safe sweep's transaction: score answers not yet scored, move unanswered
    tickets along their chain, and end the suspensions whose cool-down has passed."""
    from .oversight import Oversight

    oversight = Oversight(store, policy)
    oversight.catch_up(conn, now)
    fired = _hops(oversight, conn, now)
    for ended in store.oversight.ended_cooldowns(conn, iso(now)):
        reinstate_in(oversight, conn, ended.actor, by=SOURCE, reason="cool-down ended", at=parse_iso(ended.until))
        fired.append(Transition(ended.ticket or ended.actor, f"cooldown_ended:{ended.actor}", ended.until,
                                now - parse_iso(ended.until) > CATCH_UP_GRACE))
    return fired


def _hops(oversight: Oversight, conn: sqlite3.Connection, now: datetime) -> list[Transition]:
    fired = []
    store = oversight.store
    for ticket in store.oversight.open_tickets(conn):
        team = oversight.rules.teams.get(ticket["team"]) or oversight.rules.team_of(ticket["actor"])[1]
        rule = oversight.rules.rule(ticket["rule"])
        step, step_at = ticket["step"], parse_iso(ticket["step_at"])
        while step < len(team.chain) - 1:
            held, nxt = team.chain[step], team.chain[step + 1]
            if not held.answer_within:
                break
            due = step_at + held.answer_within
            if due > now:
                break
            step, step_at = step + 1, due
            stage = stage_name(nxt.role)
            recorded = store.failsafe.record(conn, ticket["escalation_id"], stage, iso(due))
            store.oversight.move_ticket(conn, ticket["escalation_id"], step, iso(due))
            if not recorded:  # another sweeper moved it
                continue
            _hop(oversight, conn, ticket, held, nxt, stage, due)
            fired.append(Transition(ticket["escalation_id"], stage, iso(due), now - due > CATCH_UP_GRACE))
            if rule is not None and rule.suspend_at == nxt.role and current_suspension(store, conn, ticket["actor"]) is None:
                suspend_in(oversight, conn, ticket["actor"], by=SOURCE, cooldown=rule.cooldown, at=due,
                           ticket=ticket["escalation_id"],
                           reason=f"ticket {ticket['escalation_id']} unanswered until it reached the {nxt.role} "
                                  f"(rule {rule.name})")
    return fired


def _hop(oversight: Oversight, conn: sqlite3.Connection, ticket: Ticket, held: Any, nxt: Any, stage: str,
         due: datetime) -> None:
    store = oversight.store
    esc_id = ticket["escalation_id"]
    record = store.escalation(esc_id, conn)
    route_within = oversight.ops.routing[record["severity"]].respond_within
    store.update_escalation(conn, esc_id, assignee=nxt.actor, status="raised", raised_at=store.now(),
                            due_at=iso(due + (nxt.answer_within or route_within)))
    store.audit(conn, f"failsafe_{stage}", "failsafe", escalation_id=esc_id,
                data={"due_at": iso(due), "before": {"assignee": record.get("assignee")},
                      "after": {"assignee": nxt.actor}, "role": nxt.role, "actor": ticket["actor"],
                      "holder": nxt.actor})
    updated = store.escalation(esc_id, conn)
    span = held.answer_within
    from ..durations import duration_label

    notify.enqueue(store, conn, oversight.ops, nxt.notify, stage, updated,
                   f"The {held.role} ({held.actor}) did not answer within {duration_label(span)}: the ticket about "
                   f"{ticket['actor']} moves to the {nxt.role} ({nxt.actor}).", nxt.actor)
