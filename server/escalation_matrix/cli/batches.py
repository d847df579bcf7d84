"""Batches of questions for one person: list them, show one (text, markdown or its JSON card) and
approve all of it or the items selected. No model is loaded."""

from __future__ import annotations

import json

import click

from . import main
from .common import AppState, db_option, translate_errors


@main.group()
def batch() -> None:
    """Escalations that can wait, delivered to their person together (at most the policy's batch size)."""


@batch.command("list")
@click.option("--status", type=click.Choice(["open", "delivered", "answered"]), help="Only batches in this state.")
@click.option("--person", help="Only this person's batches.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@click.pass_obj
@translate_errors
def batch_list(state: AppState, status: str | None, person: str | None, as_json: bool, db: str | None) -> None:
    """Each batch: whom it is for, its state, its items (open / all) and groups, when it is delivered."""
    from ..ops.batches import listing

    rows = listing(state.store(db), state.policy.decisions.batching, status, person)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no batches")
        return
    for r in rows:
        when = f"delivered {r['delivered_at']} ({r['delivered_why']})" if r["delivered_at"] else f"due {r['deliver_by']}"
        click.echo(f"{r['id']:>4} {r['person']} {r['status']}: {r['open_items']} of {r['items']} open, "
                   f"{r['groups']} group{'s' if r['groups'] != 1 else ''}, {when}")


@batch.command("show")
@click.argument("batch_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["txt", "md", "json"]), default="txt", show_default=True,
              help="txt, md, or json (the batch card).")
@db_option
@click.pass_obj
@translate_errors
def batch_show(state: AppState, batch_id: int, fmt: str, db: str | None) -> None:
    """BATCH_ID's questions, grouped by task, type and resource."""
    from ..ops.batches import show
    from ..render import batch_card, batch_text

    found = show(state.store(db), batch_id, state.policy.decisions.batching)
    click.echo(batch_card(found).model_dump_json(indent=2) if fmt == "json" else batch_text(found, fmt), nl=fmt == "json")


def _answer(state: AppState, batch_id: int, items: tuple[str, ...], action: str, by: str, note: str | None,
            db: str | None) -> None:
    from ..ops.batches import answer_batch

    done = answer_batch(state.store(db), batch_id, by, state.policy.decisions.batching, items=list(items) or None,
                        action=action, note=note, learn=state.policy.decisions.preferences)
    verb = {"approve": "approved", "reject": "rejected"}[action]
    click.echo(f"batch {batch_id}: {verb} {', '.join(done['answered'])}; {done['open_left']} open left "
               f"({done['status']})")


@batch.command("approve")
@click.argument("batch_id", type=int)
@click.option("--items", "items", multiple=True, help="Approve only this escalation of the batch (repeatable); "
                                                       "omitted: every open item.")
@click.option("--by", default="operator", show_default=True, help="Who approves (written to the audit trail).")
@click.option("--note", help="A note kept with each answer.")
@db_option
@click.pass_obj
@translate_errors
def batch_approve(state: AppState, batch_id: int, items: tuple[str, ...], by: str, note: str | None,
                  db: str | None) -> None:
    """Approve all open items of BATCH_ID, or the ones given with --items."""
    _answer(state, batch_id, items, "approve", by, note, db)


@batch.command("reject")
@click.argument("batch_id", type=int)
@click.option("--items", "items", multiple=True, help="Reject only this escalation of the batch (repeatable).")
@click.option("--by", default="operator", show_default=True, help="Who rejects (written to the audit trail).")
@click.option("--note", help="A note kept with each answer.")
@db_option
@click.pass_obj
@translate_errors
def batch_reject(state: AppState, batch_id: int, items: tuple[str, ...], by: str, note: str | None,
                 db: str | None) -> None:
    """Reject all open items of BATCH_ID, or the ones given with --items."""
    _answer(state, batch_id, items, "reject", by, note, db)
