"""The oversight part of a period's report: each actor's decisions and score, the tickets a low
score opened, and every suspension (replacement) that overlapped the period."""

from __future__ import annotations

import json
from collections import defaultdict

from pydantic import BaseModel, Field

from ..store import Store


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


def actor_lines(store: Store, start: str, end: str) -> list[ActorLine]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in store.reports.actor_decisions(start, end):
        counts[line.actor][0] += line.total
        counts[line.actor][1] += line.total if line.delta > 0 else 0
    tickets = store.reports.tickets_opened(start, end)
    suspended = store.reports.suspensions_begun(start, end)
    lines = []
    for actor in sorted(set(counts) | set(tickets) | set(suspended)):
        n, agreed = counts.get(actor, [0, 0])
        lines.append(ActorLine(actor=actor, decisions=n, agreed=agreed,
                               period_score=round(100 * agreed / n, 1) if n else None,
                               score_at_end=store.reports.score_before(actor, end), tickets=tickets.get(actor, 0),
                               suspensions=suspended.get(actor, 0)))
    return lines


def replacement_lines(store: Store, start: str, end: str) -> list[ReplacementLine]:
    return [ReplacementLine(actor=s.actor, replacement=s.replacement, suspended_at=s.suspended_at, until=s.until,
                            reinstated_at=s.reinstated_at, reinstated_by=s.reinstated_by,
                            items_moved=len(json.loads(s.moved)), ticket=s.ticket)
            for s in store.reports.suspensions_overlapping(start, end)]
