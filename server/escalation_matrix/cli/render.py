"""``escalation-matrix render``: show a stored escalation as a chat frontend would."""

from __future__ import annotations

import click

from . import main
from .common import AppState, db_option, translate_errors


@main.command(name="render")
@click.argument("escalation_id")
@click.option("-f", "--format", "fmt", type=click.Choice(["md", "txt", "html", "json"]), default="md",
              show_default=True, help="md (the standard escalation message), txt, html (escaped) or json (the card).")
@db_option
@click.pass_obj
@translate_errors
def render_command(state: AppState, escalation_id: str, fmt: str, db: str | None) -> None:
    """Render escalation ESCALATION_ID (e.g. ESC-2026-001) from the state file as markdown, plain
    text, HTML or the JSON card, with the current phrase and message templates."""
    from ..render import render

    record = state.store(db).escalation(escalation_id)
    click.echo(render(record, fmt, state.policy), nl=False)
