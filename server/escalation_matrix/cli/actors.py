"""Actor oversight commands: scores, decisions, suspend, reinstate and the re-routing chain."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from . import main
from .common import AppState, CliError, db_option, translate_errors

if TYPE_CHECKING:
    from ..ops.oversight import Oversight

BY = click.option("--by", default="operator", show_default=True, help="Who does this (written to the audit trail).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _oversight(state: AppState, db: str | None) -> Oversight:
    from ..ops.oversight import Oversight

    return Oversight(state.store(db), state.policy)


@main.group()
def actors() -> None:
    """Oversight of the people and agents who answer escalations: scores, suspensions, the chain.

    A decision is an answer to an escalation that carries the agent's suggestion: +1 when the
    actor chose the suggestion, -1 otherwise. The score (0-100) is the share of agreements over
    the actor's last decisions (policies/oversight.yaml: window, rules, teams)."""


@actors.command("list")
@JSON
@db_option
@click.pass_obj
@translate_errors
def list_cmd(state: AppState, as_json: bool, db: str | None) -> None:
    """List actors with their rolling score, status and open ticket."""
    rows = _oversight(state, db).actors()
    if as_json:
        click.echo(json.dumps([r.model_dump() for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no actor has decisions yet")
        return
    click.echo(f"{'actor':<24}{'team':<14}{'score':>7}{'decisions':>11}  {'status':<11}{'ticket':<14}replacement / until")
    for r in rows:
        extra = f"{r.replacement} until {r.suspended_until}" if r.status == "suspended" else "-"
        click.echo(f"{r.name[:23]:<24}{r.team[:13]:<14}{r.score:>7.1f}{r.decisions:>11}  {r.status:<11}"
                   f"{r.open_ticket or '-':<14}{extra}")


@actors.command("show")
@click.argument("actor")
@JSON
@db_option
@click.pass_obj
@translate_errors
def show_cmd(state: AppState, actor: str, as_json: bool, db: str | None) -> None:
    """Show ACTOR: score, recent decisions, tickets, suspensions and its team's chain."""
    view = _oversight(state, db).actor(actor)
    if as_json:
        click.echo(json.dumps(view, indent=2, ensure_ascii=False))
        return
    click.echo(f"{view['name']} ({view['team']}): score {view['score']:.1f} over {min(view['decisions'], view['window'])} "
               f"of {view['decisions']} decisions, {view['status']}"
               + (f" until {view['suspended_until']}, replaced by {view['replacement']}" if view["suspended_until"] else ""))
    click.echo("chain: " + " -> ".join(f"{s['role']} {s['actor']}" + (f" ({s['answer_within']})" if s["answer_within"] else "")
                                       for s in view["chain"]["steps"]) + f"; replacement {view['chain']['replacement']}")
    for t in view["tickets"]:
        click.echo(f"ticket {t['id']}: {t['status']}, rule {t['rule']}, score {t['score']:.1f}, held by {t['role']} {t['holder']}")
    for s in view["suspensions"]:
        end = f"reinstated {s['reinstated_at']} by {s['reinstated_by']}" if s["reinstated_at"] else f"until {s['until']}"
        click.echo(f"suspended {s['suspended_at']} by {s['suspended_by']}, {end}; {len(s['moved'])} items to {s['replacement']}")
    for d in view["recent_decisions"]:
        click.echo(f"  {d['at']} {'+1' if d['delta'] > 0 else '-1'} score {d['score']:.1f} {d['escalation_id'] or '-'}: "
                   f"suggested {d['suggestion']!r}, chose {d['choice']!r}")


@actors.command("record")
@click.argument("actor")
@click.option("--suggested", required=True, help="What the agent suggested.")
@click.option("--chosen", required=True, help="What the actor chose.")
@click.option("--escalation", help="The escalation the decision answered, if any (each counts once).")
@db_option
@click.pass_obj
@translate_errors
def record_cmd(state: AppState, actor: str, suggested: str, chosen: str, escalation: str | None,
               db: str | None) -> None:
    """Record a decision ACTOR made outside an escalation answer (e.g. from another system)."""
    done = _oversight(state, db).record(actor, suggested, chosen, escalation)
    click.echo(f"{done['actor']}: {'+1' if done['delta'] > 0 else '-1'}, score {done['score']:.1f} over "
               f"{done['decisions']} decisions" + (f"; ticket {done['ticket']} opened" if done["ticket"] else ""))


@actors.command("suspend")
@click.argument("actor")
@click.option("--reason", required=True, help="Why the actor is suspended.")
@click.option("--cooldown", help="How long (e.g. 24h); default: the first rule's cool-down.")
@BY
@db_option
@click.pass_obj
@translate_errors
def suspend_cmd(state: AppState, actor: str, reason: str, cooldown: str | None, by: str, db: str | None) -> None:
    """Suspend ACTOR for a cool-down; its open items go to its team's replacement."""
    from ..ops.oversight_chain import suspend
    from ..durations import parse_duration

    try:
        span = parse_duration(cooldown) if cooldown else None
    except ValueError as exc:
        raise CliError(f"--cooldown: {exc}") from None
    held = suspend(_oversight(state, db), actor, reason, by, span)
    click.echo(f"{held['actor']} suspended until {held['until']}; {len(held['moved'])} open items moved to "
               f"{held['replacement']}: {', '.join(held['moved']) or '-'}")


@actors.command("reinstate")
@click.argument("actor")
@click.option("--reason", default="reinstated by an operator", show_default=True, help="Why.")
@BY
@db_option
@click.pass_obj
@translate_errors
def reinstate_cmd(state: AppState, actor: str, reason: str, by: str, db: str | None) -> None:
    """Reinstate a suspended ACTOR before its cool-down ends."""
    from ..ops.oversight_chain import reinstate

    done = reinstate(_oversight(state, db), actor, by, reason)
    click.echo(f"{done['actor']} reinstated at {done['reinstated_at']} by {done['reinstated_by']}")


@actors.command("chain")
@click.option("--team", help="Only this team.")
@JSON
@click.pass_obj
@translate_errors
def chain_cmd(state: AppState, team: str | None, as_json: bool) -> None:
    """Show who holds a ticket at each step of each team's chain, and for how long."""
    from ..oversight_policy import stage_name

    rules = state.policy.oversight
    if team and team not in rules.teams:
        raise CliError(f"no team {team!r}; teams: {', '.join(sorted(rules.teams))}")
    teams = {n: t for n, t in rules.teams.items() if not team or n == team}
    data = {n: {"replacement": t.stand_in, "members": sorted(a for a, tm in rules.actors.items() if tm == n),
                "steps": [{"role": s.role, "actor": s.actor, "stage": stage_name(s.role) if i else "ticket opened",
                           "answer_within": s.answer_within.total_seconds() if s.answer_within else None,
                           "notify": s.notify} for i, s in enumerate(t.chain)]} for n, t in teams.items()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from ..durations import duration_label

    for name, t in teams.items():
        click.echo(f"{name}: replacement {t.stand_in}")
        for i, s in enumerate(t.chain):
            within = f"answers within {duration_label(s.answer_within)}" if s.answer_within else "last step"
            click.echo(f"  {i + 1}. {s.role}: {s.actor} ({within}; {stage_name(s.role) if i else 'ticket opened'})")
