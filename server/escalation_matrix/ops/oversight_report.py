"""The oversight part of a period's report: each actor's decisions and score, the tickets a low
score opened, and every suspension (replacement) that overlapped the period."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from pydantic import BaseModel, Field


class ActorLine(BaseModel):
    actor: str = Field(description="The actor.")
    decisions: int = Field(description="Decisions scored in the period.")
    agreed: int = Field(description="Of those, how many chose the agent's suggestion (+1).")
    period_score: float | None = Field(description="Score over the period's decisions, 0-100.")
    score_at_end: float | None = Field(description="Rolling score after its last decision before the period's end.")
    tickets: int = Field(description="Oversight tickets opened about it in the period.")
    suspensions: int = Field(description="Suspensions that began in the period.")


class ReplacementLine(BaseModel):
    actor: str = Field(description="The suspended actor.")
    replacement: str = Field(description="Who held its items.")
    suspended_at: str = Field(description="Start of the suspension.")
    until: str = Field(description="End of the cool-down.")
    reinstated_at: str | None = Field(description="When it was reinstated (null while suspended).")
    reinstated_by: str | None = Field(description="oversight (the cool-down ended) or the operator.")
    items_moved: int = Field(description="Open items moved to the replacement.")
    ticket: str | None = Field(description="The ticket that led to it, if any.")


def actor_lines(conn: sqlite3.Connection, start: str, end: str) -> list[ActorLine]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for actor, delta, n in conn.execute("SELECT actor, delta, COUNT(*) FROM actor_decisions WHERE at >= ? AND at < ? "
                                        "GROUP BY actor, delta", (start, end)):
        counts[actor][0] += n
        counts[actor][1] += n if delta > 0 else 0
    tickets = dict(conn.execute("SELECT actor, COUNT(*) FROM oversight_tickets WHERE opened_at >= ? AND opened_at < ? "
                                "GROUP BY actor", (start, end)).fetchall())
    suspended = dict(conn.execute("SELECT actor, COUNT(*) FROM actor_suspensions WHERE suspended_at >= ? AND "
                                  "suspended_at < ? GROUP BY actor", (start, end)).fetchall())
    lines = []
    for actor in sorted(set(counts) | set(tickets) | set(suspended)):
        n, agreed = counts.get(actor, [0, 0])
        last = conn.execute("SELECT score FROM actor_decisions WHERE actor = ? AND at < ? ORDER BY id DESC LIMIT 1",
                            (actor, end)).fetchone()
        lines.append(ActorLine(actor=actor, decisions=n, agreed=agreed,
                               period_score=round(100 * agreed / n, 1) if n else None,
                               score_at_end=last[0] if last else None, tickets=tickets.get(actor, 0),
                               suspensions=suspended.get(actor, 0)))
    return lines


def replacement_lines(conn: sqlite3.Connection, start: str, end: str) -> list[ReplacementLine]:
    rows = conn.execute("SELECT * FROM actor_suspensions WHERE suspended_at < ? AND COALESCE(reinstated_at, until) >= ? "
                        "ORDER BY suspended_at, id", (end, start)).fetchall()
    return [ReplacementLine(actor=r["actor"], replacement=r["replacement"], suspended_at=r["suspended_at"],
                            until=r["until"], reinstated_at=r["reinstated_at"], reinstated_by=r["reinstated_by"],
                            items_moved=len(json.loads(r["moved"])), ticket=r["ticket"]) for r in rows]
