"""policies/oversight.yaml as a strict model: how actors (the people and agents who answer
escalations) are scored, which score opens a ticket, who the ticket goes to and in what order,
and who stands in while an actor is suspended."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from .models import EscalationType, Severity
from .strict import Strict
from .ops_policy import Duration, OperationsFile

if TYPE_CHECKING:
    from .policy import PolicyFiles

SPECIAL_SUSPEND = ("ticket", "never")


def stage_name(role: str) -> str:
    """The fail-safe stage of a hop to ``role``: 'deputy' -> 'reroute_to_deputy'."""
    return "reroute_to_" + (re.sub(r"[^a-z0-9]+", "_", role.lower()).strip("_") or "next")


class ChainStep(Strict):
    role: str = Field(min_length=1, description="What the holder is: supervisor, deputy, director, backup agent.")
    actor: str = Field(min_length=1, description="Who holds the ticket at this step (a person, team or agent name).")
    answer_within: Duration | None = Field(
        default=None, description="How long this holder has to answer before the ticket moves to the next step; "
                                  "the last step needs none.")
    notify: list[str] = Field(default_factory=lambda: ["log"],
                              description="Channels (operations.yaml notifications) told when the ticket reaches this step.")


class Team(Strict):
    chain: list[ChainStep] = Field(min_length=1, description="Who holds a ticket about an actor of this team, in order.")
    replacement: str | None = Field(
        default=None, description="Who takes over a suspended actor's open items; default: the last step's actor.")

    @property
    def stand_in(self) -> str:
        return self.replacement or self.chain[-1].actor


class OversightRule(Strict):
    name: str = Field(min_length=1, description="The rule's name, shown on its tickets and in the audit trail.")
    score_below: float = Field(gt=0, le=100, description="Opens a ticket when the actor's score is below this.")
    within: Duration | None = Field(
        default=timedelta(hours=1),
        description="Score only the decisions of this last period (at most `window` of them); null: the rolling score.")
    min_decisions: int = Field(default=10, ge=1, description="Decisions needed in that period before the rule can fire.")
    severity: Severity = Field(default=Severity.L3,
                               description="Severity of the ticket; operations.yaml routing gives its level and channels.")
    type: EscalationType = Field(default=EscalationType.pattern, description="Escalation type of the ticket.")
    suspend_at: str = Field(
        default="ticket", description="When the actor is suspended: ticket (as the ticket opens), a chain role "
                                      "(when the ticket reaches it unanswered, e.g. deputy) or never.")
    cooldown: Duration = Field(default=timedelta(hours=24), description="How long a suspension lasts unless an operator "
                                                                        "reinstates the actor sooner.")


def _default_team() -> dict[str, Team]:
    return {"default": Team(chain=[
        ChainStep(role="supervisor", actor="supervisor", answer_within=timedelta(hours=4)),
        ChainStep(role="deputy", actor="deputy", answer_within=timedelta(hours=4)),
        ChainStep(role="director", actor="director", answer_within=timedelta(hours=4)),
        ChainStep(role="backup agent", actor="backup-agent")])}


class OversightFile(Strict):
    window: int = Field(default=100, ge=1, le=10000, description="Decisions in an actor's rolling score.")
    rules: list[OversightRule] = Field(
        default_factory=lambda: [OversightRule(name="low_score", score_below=70, suspend_at="deputy")],
        description="When a low score opens a ticket and suspends the actor.")
    teams: dict[str, Team] = Field(default_factory=_default_team,
                                   description="Ticket chain and replacement per team; `default` serves unlisted actors.")
    actors: dict[str, str] = Field(default_factory=dict, description="Actor name -> team.")

    @model_validator(mode="after")
    def _cross_check(self) -> OversightFile:
        problems = []
        if "default" not in self.teams:
            problems.append("teams: add a `default` team (it serves every actor not listed under actors)")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                problems.append(f"rules: the name {rule.name!r} is used twice; give each rule its own name")
            seen.add(rule.name)
            if rule.suspend_at in SPECIAL_SUSPEND:
                continue
            lacking = sorted(n for n, t in self.teams.items() if rule.suspend_at not in {s.role for s in t.chain})
            if lacking:
                problems.append(f"rules: suspend_at {rule.suspend_at!r} is not a chain role of team(s) {lacking}; use "
                                f"ticket, never or a role every team has (rule {rule.name})")
        for name, team in self.teams.items():
            roles = [stage_name(s.role) for s in team.chain]
            if len(set(roles)) != len(roles):
                problems.append(f"teams.{name}.chain: two steps have the same role; name each step's role differently")
            for i, step in enumerate(team.chain[:-1]):
                if step.answer_within is None or step.answer_within <= timedelta(0):
                    problems.append(f"teams.{name}.chain.{i}: add answer_within (how long {step.role} has before "
                                    f"the ticket moves to {team.chain[i + 1].role})")
        for actor, team_name in self.actors.items():
            if team_name not in self.teams:
                problems.append(f"actors.{actor}: team {team_name!r} is not under teams; use one of {sorted(self.teams)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def team_of(self, actor: str) -> tuple[str, Team]:
        name = self.actors.get(actor, "default")
        return name, self.teams.get(name) or next(iter(self.teams.values()))

    def rule(self, name: str) -> OversightRule | None:
        return next((r for r in self.rules if r.name == name), None)


def oversight_policy(policy: PolicyFiles | OversightFile) -> OversightFile:
    """The oversight part of a loaded Policy (``policy.oversight``), or the file itself."""
    return policy if isinstance(policy, OversightFile) else policy.oversight


def check_with_operations(folder: Path, oversight: OversightFile, ops: OperationsFile) -> list[tuple[str, str, str]]:
    """Cross-file problems: every channel a chain step notifies must be defined in operations.yaml."""
    path, known = str(folder / "oversight.yaml"), set(ops.notifications.channels)
    problems = []
    for name, team in oversight.teams.items():
        for i, step in enumerate(team.chain):
            unknown = sorted(set(step.notify) - known)
            if unknown:
                message = (f"channels {unknown} are not defined; add them under notifications.channels in "
                           f"operations.yaml or use one of {sorted(known)}")
                problems.append((path, f"teams.{name}.chain.{i}.notify", message))
    return problems
