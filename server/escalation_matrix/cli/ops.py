"""Operator commands: create, assign, note, raise, answer, resolve, close,
list, show, sweep, report, audit verify and pipeline report. No model is loaded: these work on
the state file and the policy only."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import main
from .common import AppState, CliError, db_option, translate_errors

if TYPE_CHECKING:
    from ..ops.records import Operations

F = TypeVar("F", bound=Callable[..., Any])

BY = click.option("--by", default="operator", show_default=True, help="Who does this (written to the audit trail).")


def _ops(state: AppState, db: str | None) -> Operations:
    from ..ops.records import Operations

    return Operations(state.store(db), state.policy)


def _echo_record(record: dict[str, Any], verb: str) -> None:
    click.echo(f"{record['id']} {verb}: {record['status']}, {record['severity']}, level {record['level']}, "
               f"assignee {record.get('assignee') or '-'}, due {record.get('due_at') or '-'}")


def _moment(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    from ..store import parse_iso

    try:
        moment = parse_iso(value)
    except ValueError:
        raise CliError(f"{what} {value!r} is not an ISO time; write e.g. 2026-11-22T09:30:00Z") from None
    if moment.tzinfo is None:
        raise CliError(f"{what} {value!r} has no time zone; add Z for UTC")
    return moment


@main.command()
@click.option("--reason", required=True, help="One sentence: why a person is needed.")
@click.option("--level", type=int, default=1, show_default=True, help="Routing level (1 operational, 2 engineering, 3 product).")
@click.option("--details", help="What the person needs to know.")
@click.option("--assigned-to", help="Assignee (default: the level's assignee in operations.yaml).")
@click.option("--type", "etype", default="decision", show_default=True, help="Escalation type.")
@click.option("--severity", type=click.Choice(["L1", "L2", "L3", "L4"]), help="Severity (default: the type's).")
@click.option("--conversation", help="Conversation the escalation belongs to, if any.")
@click.option("--task", help="Task inside the conversation, if any.")
@click.option("--suggestion", help="The option the agent suggests; the answer is scored against it (actors).")
@BY
@db_option
@click.pass_obj
@translate_errors
def create(state: AppState, reason: str, level: int, details: str | None, assigned_to: str | None, etype: str,
           severity: str | None, conversation: str | None, task: str | None, suggestion: str | None, by: str,
           db: str | None) -> None:
    """Create a manual escalation, routed to a level and its assignee."""
    record = _ops(state, db).create(reason, level=level, details=details, assigned_to=assigned_to, by=by,
                                    type=etype, severity=severity, conversation_id=conversation, task_id=task,
                                    suggestion=suggestion)
    _echo_record(record, "created")


@main.command()
@click.argument("escalation_id")
@click.option("--assigned-to", required=True, help="New assignee.")
@click.option("--level", type=int, help="Also move it to this routing level.")
@BY
@db_option
@click.pass_obj
@translate_errors
def assign(state: AppState, escalation_id: str, assigned_to: str, level: int | None, by: str, db: str | None) -> None:
    """Assign ESCALATION_ID to a person or team."""
    _echo_record(_ops(state, db).assign(escalation_id, assigned_to, by=by, level=level), "assigned")


@main.command()
@click.argument("escalation_id")
@click.argument("text")
@BY
@db_option
@click.pass_obj
@translate_errors
def note(state: AppState, escalation_id: str, text: str, by: str, db: str | None) -> None:
    """Add an investigation note to ESCALATION_ID."""
    _echo_record(_ops(state, db).note(escalation_id, text, by=by), "noted")


@main.command("raise")
@click.argument("escalation_id")
@click.option("--new-level", type=int, required=True, help="The higher routing level.")
@click.option("--reason", required=True, help="Why it needs the higher level.")
@click.option("--assigned-to", help="Assignee at the new level (default: the level's).")
@BY
@db_option
@click.pass_obj
@translate_errors
def raise_cmd(state: AppState, escalation_id: str, new_level: int, reason: str, assigned_to: str | None, by: str,
              db: str | None) -> None:
    """Raise ESCALATION_ID to a higher routing level, with a reason."""
    _echo_record(_ops(state, db).raise_level(escalation_id, new_level, reason, by=by, assigned_to=assigned_to),
                 "raised")


@main.command()
@click.argument("escalation_id")
@click.argument("answer")
@click.option("--necessary/--unnecessary", default=None,
              help="Whether asking a person was needed (an outcome for the adaptive escalation target); "
                   "by default an answer that agrees with the agent's default counts as unnecessary.")
@BY
@db_option
@click.pass_obj
@translate_errors
def answer(state: AppState, escalation_id: str, answer: str, necessary: bool | None, by: str, db: str | None) -> None:
    """Answer ESCALATION_ID; the agent's next call proceeds with ANSWER."""
    _echo_record(_ops(state, db).answer(escalation_id, answer, by=by, necessary=necessary), "answered")


def _closing_options(fn: F) -> F:
    for option in reversed([
        click.option("--resolution", required=True, help="What was done to resolve it."),
        click.option("--preventive-measures", help="What prevents it from happening again."),
        click.option("--lessons-learned", help="What was learned."),
        click.option("--method", help="Resolution method, e.g. manual, data-correction, algorithm-update."),
    ]):
        fn = option(fn)
    return fn


def _closing_command(name: str, close: bool, doc: str) -> None:
    @main.command(name, help=doc)
    @click.argument("escalation_id")
    @_closing_options
    @BY
    @db_option
    @click.pass_obj
    @translate_errors
    def command(state: AppState, escalation_id: str, resolution: str, preventive_measures: str | None,
                lessons_learned: str | None, method: str | None, by: str, db: str | None) -> None:
        record = _ops(state, db).resolve(escalation_id, resolution, preventive_measures=preventive_measures,
                                         lessons_learned=lessons_learned, method=method, by=by, close=close)
        _echo_record(record, "closed" if close else "resolved")


_closing_command("resolve", False, "Mark ESCALATION_ID resolved; it stays open for verification until closed.")
_closing_command("close", True,
                 "Close ESCALATION_ID with resolution, preventive measures and lessons learned.")


@main.command("list")
@click.option("--status", help="open, awaiting_response, raised, blocked, answered, resolved, expired, closed, "
                               "or active (every open one).")
@click.option("--level", type=int, help="Routing level.")
@click.option("--type", "etype", help="Escalation type.")
@click.option("--severity", type=click.Choice(["L1", "L2", "L3", "L4"]), help="Severity.")
@click.option("--assignee", help="Assignee.")
@click.option("--older-than", help="Only those created longer ago than this (e.g. 30m, 24h, 2d).")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@click.pass_obj
@translate_errors
def list_cmd(state: AppState, status: str | None, level: int | None, etype: str | None, severity: str | None,
             assignee: str | None, older_than: str | None, limit: int, as_json: bool, db: str | None) -> None:
    """List escalations, newest first, with filters."""
    from ..durations import parse_duration

    age = None
    if older_than:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise CliError(f"--older-than: {exc}") from None
    rows = _ops(state, db).list(status=status, level=level, type=etype, severity=severity, assignee=assignee,
                                older_than=age, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no escalations match")
        return
    click.echo(f"{'id':<14}{'sev':<5}{'lvl':<5}{'status':<19}{'type':<15}{'assignee':<22}{'created':<22}reason")
    for r in rows:
        reason = (r.get("reason") or r.get("request") or "")[:60]
        click.echo(f"{r['id']:<14}{r['severity']:<5}{r['level']:<5}{r['status']:<19}{r['type']:<15}"
                   f"{(r.get('assignee') or '-')[:21]:<22}{r['created_at']:<22}{reason}")


@main.command()
@click.argument("escalation_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@click.pass_obj
@translate_errors
def show(state: AppState, escalation_id: str, as_json: bool, db: str | None) -> None:
    """Show ESCALATION_ID with its notes, fail-safe stages, notifications and audit entries."""
    record = _ops(state, db).show(escalation_id)
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    skip = {"notes", "failsafes", "notifications", "audit", "message", "context", "options", "assessment", "outcome"}
    for key, value in record.items():
        if key not in skip and value not in (None, "", []):
            click.echo(f"{key:>20}: {value}")
    a = record.get("assessment")
    if a:  # why the guard escalated (records made before assessments were kept have none)
        click.echo(f"{'escalated by':>20}: {a.get('rule')}")
        click.echo(f"{'criticality':>20}: {a.get('criticality'):.2f}{' (critical)' if a.get('critical') else ''}"
                   f"{' from ' + ', '.join(a['factors']) if a.get('factors') else ''}")
        click.echo(f"{'decision':>20}: {a.get('decision_type')}, {a.get('category')}")
        if a.get("autonomy") is not None:
            click.echo(f"{'confidence alone':>20}: {a['autonomy']:.2f}{' (low)' if a.get('low_confidence') else ''}")
        if a.get("unusual"):
            click.echo(f"{'unusual':>20}: {a['unusual']}")
    o = record.get("outcome")
    if o:
        click.echo(f"{'outcome':>20}: {o['outcome']} by {o['by']} at {o['at']}{' - ' + o['note'] if o.get('note') else ''}")
    for option in record.get("options") or []:
        click.echo(f"{'option':>20}: {option}")
    for n in record["notes"]:
        click.echo(f"{'note':>20}: {n['created_at']} {n['author']}: {n['text']}")
    for f in record["failsafes"]:
        click.echo(f"{'fail-safe':>20}: {f['at']} {f['stage']}")
    for n in record["notifications"]:
        click.echo(f"{'notification':>20}: {n.get('channel')} {n.get('event')} {n.get('status')}"
                   f"{' (' + n['last_error'] + ')' if n.get('last_error') else ''}")
    for a in record["audit"]:
        click.echo(f"{'audit':>20}: #{a['seq']} {a['at']} {a['actor']} {a['action']}")


@main.command()
@click.option("--now", "now_text", help="Evaluate timers at this ISO time instead of the clock (for tests and replays).")
@click.option("--no-deliver", is_flag=True, help="Apply timers only; leave queued notifications for later.")
@db_option
@click.pass_obj
@translate_errors
def sweep(state: AppState, now_text: str | None, no_deliver: bool, db: str | None) -> None:
    """Apply every fail-safe timer that is due and deliver queued notifications.

    The timers: an L1 escalation unanswered for 5 minutes gets a reminder and at 15 minutes is
    raised to L2; an L2 unanswered for 30 minutes is raised to L3 and its task awaits guidance; an
    L3 unresolved for 24 hours goes on the blocked-tasks report; an L4 locks its task at once
    (times as set in policies/operations.yaml)."""
    from ..ops.failsafe import sweep as run_sweep
    from ..ops.notify import deliver

    store = state.store(db)
    now = _moment(now_text, "--now")
    result = run_sweep(store, state.policy, now)
    for t in result.transitions:
        click.echo(f"{t.escalation_id} {t.stage} {t.due_at}{' (caught up)' if t.late else ''}")
    for batch_id in result.batches:
        click.echo(f"batch {batch_id} delivered (its window ended)")
    late = sum(t.late for t in result.transitions)
    click.echo(f"swept {result.open} open escalations at {result.now}: {len(result.transitions)} transitions"
               f"{f' ({late} caught up late, one notice per escalation)' if late else ''}")
    if not no_deliver:
        report = deliver(store, state.policy.operations, now)
        click.echo(f"notifications: {report.sent} sent, {report.retrying} to retry, {report.failed} failed")
        for error in report.errors:
            click.echo(f"  {error}", err=True)


@main.command()
@click.option("--daily", "period", flag_value="daily", default=True, help="The day of --date (default).")
@click.option("--weekly", "period", flag_value="weekly", help="The seven days ending with --date (e.g. 02-08 to 02-14).")
@click.option("--monthly", "period", flag_value="monthly", help="The month of --date.")
@click.option("--date", "day", help="A day in the period, YYYY-MM-DD (default: today).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True,
              help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option("--chart", type=click.Path(dir_okay=False), help="Also write a PNG chart of the rate over time (needs the charts extra: matplotlib).")
@db_option
@click.pass_obj
@translate_errors
def report(state: AppState, period: str, day: str | None, fmt: str, output: str | None, chart: str | None,
           db: str | None) -> None:
    """Escalation report: rates against targets, by type and reason, resolution times and trend.

    Rates are escalations over all decisions evaluated, in total and per severity, against the
    targets in policies/operations.yaml (by default under 10 % in total; L1 8 %, L2 3 %, L3 1 %,
    L4 0.1 %), with an alert flag above each alert threshold."""
    from ..ops.report_format import chart as draw
    from ..ops.report_format import render_report
    from ..ops.reports import build_report

    when = None
    if day:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise CliError(f"--date {day!r} is not a date; write YYYY-MM-DD") from None
    built = build_report(state.store(db), state.policy, period, when)
    text = render_report(built, fmt)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)
    if chart:
        click.echo(f"wrote {draw(built, chart)}", err=bool(not output))


@main.group()
def audit() -> None:
    """The append-only, hash-chained audit trail."""


@audit.command("verify")
@db_option
@click.pass_obj
@translate_errors
def audit_verify(state: AppState, db: str | None) -> None:
    """Check every entry's hash against the one before; exit 1 on any edit or deletion."""
    from ..ops.audit import verify

    check = verify(state.store(db))
    if check.ok:
        unsigned = f", {check.unsigned} written before the chain was keyed" if check.unsigned else ""
        click.echo(f"ok: {check.entries} entries ({check.anchored} anchored{unsigned}), head {check.head[:16]}")
        return
    for problem in check.problems:
        click.echo(problem, err=True)
    raise CliError(f"audit trail is broken from entry #{check.first_bad_seq} ({check.entries} entries checked)")


@main.group()
def pipeline() -> None:
    """Automatic escalation triggers for processing pipelines."""


@pipeline.command("report")
@click.argument("item_id")
@click.option("--iterations", type=int, required=True, help="Feedback iterations so far.")
@click.option("--failures", type=int, default=0, show_default=True, help="Consecutive failures so far.")
@click.option("--confidence", type=float, help="Latest confidence score, 0-1.")
@click.option("--error", type=click.Choice(["data-quality", "system"]), help="The iteration hit this kind of error.")
@click.option("--details", help="Free text for the person who picks it up.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@click.pass_obj
@translate_errors
def pipeline_report(state: AppState, item_id: str, iterations: int, failures: int, confidence: float | None,
                    error: str | None, details: str | None, as_json: bool, db: str | None) -> None:
    """Report ITEM_ID's progress; escalates at the iteration limit, after consecutive failures,
    on a data-quality or system error, or on low confidence after several iterations."""
    from pydantic import ValidationError

    from ..ops.pipeline import ItemReport, report_item

    try:
        item = ItemReport(item_id=item_id, iterations=iterations, failures=failures, confidence=confidence,
                          error=error, details=details)
    except ValidationError as exc:
        raise CliError("; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    outcome = report_item(state.store(db), state.policy, item)
    if as_json:
        click.echo(outcome.model_dump_json(indent=2))
    else:
        click.echo(f"{item_id}: {f'escalated {outcome.escalation_id}' if outcome.escalated else 'continue'}"
                   f"{' (already open)' if outcome.repeated else ''} - {outcome.reason}")
