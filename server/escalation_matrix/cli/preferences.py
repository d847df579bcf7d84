"""Learned preferences: list them (with their confidence now) and revoke one. No model is loaded."""

from __future__ import annotations

import json

import click

from . import main
from .common import AppState, db_option, translate_errors


@main.group()
def preferences() -> None:
    """Preferences learned from people's answers, which answer a recurring question for them."""


@preferences.command("list")
@click.option("--scope", type=click.Choice(["person", "organisation"]), help="Only people's or organisations'.")
@click.option("--of", "scope_id", help="Only this person's or organisation's.")
@click.option("--revoked", is_flag=True, help="Include revoked preferences.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@click.pass_obj
@translate_errors
def preferences_list(state: AppState, scope: str | None, scope_id: str | None, revoked: bool, as_json: bool,
                     db: str | None) -> None:
    """Each preference: whose, which question, its answer, its confidence now and whether it answers."""
    from ..preferences import listing

    settings = state.policy.decisions.preferences
    rows = listing(state.store(db), settings, scope=scope, scope_id=scope_id, revoked=revoked)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no preferences learned yet")
        return
    click.echo(f"answers at confidence >= {settings.threshold:g} with >= {settings.min_answers} agreeing answers "
               f"(half-life {settings.half_life_days:g} days, cap {settings.cap:g})")
    for r in rows:
        state_ = (f"revoked {r['revoked_at']} by {r['revoked_by']}" if r["revoked_at"]
                  else "answers" if r["answers_now"] else "asks")
        question = r["agent_question"] or r["request"]
        click.echo(f"{r['id']:>4} {r['scope']} {r['scope_id']} [{r['type']}] {question!r} -> {r['answer']!r}  "
                   f"confidence {r['confidence']:.2f}, {r['agreeing']}/{r['answers']} agreeing, "
                   f"{r['auto_answers']} auto-answered: {state_}")


@preferences.command("revoke")
@click.argument("preference_id", type=int)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--by", default="operator", show_default=True, help="Who revokes it (written to the audit trail).")
@db_option
@click.pass_obj
@translate_errors
def preferences_revoke(state: AppState, preference_id: int, reason: str | None, by: str, db: str | None) -> None:
    """Stop PREFERENCE_ID answering for its person: they are asked again from now on."""
    from ..preferences import revoke

    row = revoke(state.store(db), preference_id, by, reason)
    click.echo(f"preference {preference_id} revoked: {row['scope']} {row['scope_id']} will be asked again")
