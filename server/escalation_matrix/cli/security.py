"""Data-protection commands: ``erase`` a conversation's personal data, or what the retention
policy says is due."""

from __future__ import annotations

import click

from . import main
from .common import AppState, CliError, db_option, translate_errors


@main.command()
@click.argument("conversation", required=False)
@click.option("--by", help="Who erases (written to the audit trail).")
@click.option("--reason", help="Why, e.g. the reference of the person's erasure request.")
@click.option("--expired", is_flag=True, help="Instead: erase what operations.yaml retention.personal_data says is due.")
@db_option
@click.pass_obj
@translate_errors
def erase(state: AppState, conversation: str | None, by: str | None, reason: str | None, expired: bool,
          db: str | None) -> None:
    """Erase the personal data (requests, questions, answers, notes) of CONVERSATION's escalations.
    The records, their outcomes and the audit trail stay; `audit verify` still passes."""
    from ..ops.erase import erase_conversation, erase_expired

    store = state.store(db)
    if expired:
        click.echo(f"erased {erase_expired(store, state.policy)} escalations past the retention period")
        return
    if not conversation or not by or not reason:
        raise CliError("give CONVERSATION, --by and --reason (or --expired)")
    count = erase_conversation(store, conversation, by, reason)
    click.echo(f"erased the personal data of {count} escalations of conversation {conversation!r}")
