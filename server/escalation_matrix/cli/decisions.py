"""Operator commands of the adaptive escalation target: mark an escalation's outcome, report a
missed one, and show, adjust, list and revert the per-type threshold offsets. No model is loaded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from . import main
from .common import AppState, db_option, translate_errors

if TYPE_CHECKING:
    from ..loader import Policy
    from ..queries.thresholds import ThresholdChange

BY = click.option("--by", default="operator", show_default=True, help="Who does this (written to the audit trail).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@main.command()
@click.argument("escalation_id")
@click.argument("verdict", type=click.Choice(["necessary", "unnecessary"]))
@click.option("--note", help="Why (kept with the outcome).")
@BY
@db_option
@click.pass_obj
@translate_errors
def outcome(state: AppState, escalation_id: str, verdict: str, note: str | None, by: str, db: str | None) -> None:
    """Mark ESCALATION_ID as necessary or unnecessary (the adaptive target learns from it)."""
    from ..adaptive import record_outcome

    store = state.store(db)
    with store.transaction() as conn:
        esc_id = store.resolve(escalation_id, conn)
        record_outcome(store, conn, verdict, by, escalation_id=esc_id, note=note)
    click.echo(f"{esc_id}: marked {verdict}")


@main.command()
@click.option("--type", "etype", required=True, help="The type it should have escalated as, e.g. decision.")
@click.option("--note", help="What was missed (kept with the outcome; no request text is needed).")
@BY
@db_option
@click.pass_obj
@translate_errors
def missed(state: AppState, etype: str, note: str | None, by: str, db: str | None) -> None:
    """Report a request that should have escalated and did not (a false negative)."""
    from ..adaptive import record_outcome

    store = state.store(db)
    with store.transaction() as conn:
        record_outcome(store, conn, "missed", by, etype=etype, note=note)
    click.echo(f"recorded a missed {etype} escalation")


@main.group()
def thresholds() -> None:
    """Per-type escalation thresholds and the adaptive offsets that move them towards the target rate."""


def _base(policy: Policy) -> dict[str, float]:
    from ..adaptive import ADJUSTABLE

    settings = policy.classifier
    if settings.method == "trained":
        return {t.value: settings.trained.margin_for(t) if t.value != "safety" else settings.trained.safety
                for t in ADJUSTABLE}
    return {t.value: settings.threshold(t) for t in ADJUSTABLE}


@thresholds.command("show")
@JSON
@db_option
@click.pass_obj
@translate_errors
def thresholds_show(state: AppState, as_json: bool, db: str | None) -> None:
    """Each type's threshold from the policy, its adaptive offset, and the threshold in effect."""
    from ..adaptive import offsets

    policy = state.policy
    settings = policy.decisions.adaptive
    current = {t.value: v for t, v in offsets(state.store(db)).items()}
    rows = [{"type": t, "policy": base, "offset": current.get(t, 0.0), "effective": round(base + current.get(t, 0.0), 4),
             "floor": t in {f.value for f in settings.floor}} for t, base in _base(policy).items()]
    if as_json:
        click.echo(json.dumps({"target_rate": settings.target_rate, "enabled": settings.enabled, "types": rows},
                              indent=2))
        return
    click.echo(f"target escalation rate {settings.target_rate:g} (adaptive {'on' if settings.enabled else 'off'})")
    for r in rows:
        floor = "  (floor: never moves)" if r["floor"] else ""
        click.echo(f"{r['type']:<14} policy {r['policy']:+.3f}  offset {r['offset']:+.3f}  "
                   f"effective {r['effective']:+.3f}{floor}")


def _echo_change(c: ThresholdChange) -> None:
    click.echo(f"#{c['id']} {c['at']} {c['type']}: {c['before']:+.3f} -> {c['after']:+.3f} by {c['by']} ({c['reason']})"
               + (f" [reverted by #{c['reverted_by']}]" if c.get("reverted_by") else ""))


@thresholds.command("adjust")
@click.option("--type", "etype", help="Set this type's offset (with --offset) instead of an automatic adjustment.")
@click.option("--offset", type=float, help="The new offset for --type (positive: escalate that type less).")
@click.option("--reason", default="set by an operator", show_default=True, help="Why (kept with the change).")
@BY
@db_option
@click.pass_obj
@translate_errors
def thresholds_adjust(state: AppState, etype: str | None, offset: float | None, reason: str, by: str,
                      db: str | None) -> None:
    """Adjust now: from the measured rate and the outcomes (no options), or set one type's offset."""
    from ..adaptive import adjust, set_offset
    from .common import CliError

    settings = state.policy.decisions.adaptive
    if (etype is None) != (offset is None):
        raise CliError("give --type and --offset together, or neither for an automatic adjustment")
    # after the check above, a --type always comes with its --offset
    changes = [set_offset(state.store(db), etype, offset, by, settings, reason)] if etype and offset is not None else \
        adjust(state.store(db), settings, by)
    if not changes:
        click.echo("no change: the rate is within the target's tolerance and no outcome moves a threshold")
    for c in changes:
        _echo_change(c)


@thresholds.command("history")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent changes to show.")
@JSON
@db_option
@click.pass_obj
@translate_errors
def thresholds_history(state: AppState, limit: int, as_json: bool, db: str | None) -> None:
    """Every change of an offset, newest first: before, after, why and by whom."""
    from ..adaptive import history

    changes = history(state.store(db), limit)
    if as_json:
        click.echo(json.dumps(changes, indent=2))
        return
    if not changes:
        click.echo("no threshold change yet")
    for c in changes:
        _echo_change(c)


@thresholds.command("revert")
@click.argument("change_id", type=int)
@BY
@db_option
@click.pass_obj
@translate_errors
def thresholds_revert(state: AppState, change_id: int, by: str, db: str | None) -> None:
    """Undo CHANGE_ID (from `thresholds history`): its type's offset goes back to the value before it."""
    from ..adaptive import revert

    _echo_change(revert(state.store(db), change_id, by))


@main.command("respond")
@click.argument("escalation_id")
@click.argument("action", type=click.Choice(["approve", "reject", "modify", "delegate", "defer", "conditional"]))
@click.option("--change", help="modify: the change to make before carrying it out.")
@click.option("--to", "to", help="delegate: who decides instead.")
@click.option("--until", help="defer: until when, e.g. 2026-12-08T09:00:00Z.")
@click.option("--condition", "conditions", multiple=True, help="conditional: a condition of the approval (repeatable).")
@click.option("--note", help="Free text kept with the answer.")
@click.option("--necessary/--unnecessary", default=None, help="Whether asking a person was needed (adaptive target).")
@BY
@db_option
@click.pass_obj
@translate_errors
def respond_cmd(state: AppState, escalation_id: str, action: str, change: str | None, to: str | None,
                until: str | None, conditions: tuple[str, ...], note: str | None, necessary: bool | None, by: str,
                db: str | None) -> None:
    """Answer ESCALATION_ID with an ACTION; the agent's next step follows from it (a deferred or
    delegated escalation stays open and the agent waits)."""
    from ..answers import answer_text, structured_answer
    from ..ops.records import Operations

    store = state.store(db)
    esc_id = store.resolve(escalation_id)
    if action in ("defer", "delegate"):
        result = Operations(store, state.policy).hold(esc_id, action, by=by, to=to, until=until, note=note)
        click.echo(f"{esc_id} {result.response.action if result.response else action}: {result.instruction}")
        return
    answered = structured_answer(action, change=change, conditions=list(conditions), note=note)
    record = Operations(store, state.policy).answer(esc_id, answer_text(answered), by=by, necessary=necessary,
                                                    response_action=action)
    click.echo(f"{record['id']} {action}: {record['answer']}")
