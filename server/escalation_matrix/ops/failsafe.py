"""Fail-safe timers, driven by ``sweep(store, policy, now)``.

Each stage fires at most once per escalation: the stage is recorded in ``failsafe_events``
(primary key escalation + stage) in the same transaction as its effect, its audit entry and its
notifications. A sweep is one ``BEGIN IMMEDIATE`` transaction, so two sweepers (the server's thread
and a cron job) or a restart half-way can neither skip nor repeat a stage.

Timers run on the escalation's logical clock: a raise is dated when it was due, not when a sweep
noticed it, so after downtime the stages catch up in order (L1 → L2 at 15 min → L3 30 min later).
Catching up sends one notice per escalation, for the stage it reached (each stage passed on the
way is audited as usual), and the sweeper logs one summary line instead of a line per stage.

Clocks per kind: the stages (policy ``failsafes``) watch agent escalations; manual and pipeline
records follow their routing level's response time (24 h, 48 h, 1 week) and are reported overdue
once per level."""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..queries.records import RecordFilter
from ..store import OPEN_STATUSES, Store, iso, parse_iso
from . import notify
from ..durations import duration_label
from ..errors import PolicyError
from ..ops_policy import FailSafe, OperationsFile

if TYPE_CHECKING:
    from ..loader import Policy

log = logging.getLogger("escalation_matrix.failsafe")
OVERDUE = "overdue_level_"  # the stage of a manual or pipeline record past its level's response time
CATCH_UP_GRACE = timedelta(minutes=5)  # a stage due longer ago than this (or two sweep intervals) is catch-up


@dataclass(frozen=True)
class Transition:
    escalation_id: str
    stage: str
    due_at: str
    late: bool = False  # due well before this sweep: the server was stopped or the sweep is a catch-up


@dataclass
class SweepResult:
    now: str
    open: int = 0
    transitions: list[Transition] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # batches whose window ended and that this sweep delivered


def sweep(store: Store, policy: Policy, now: datetime | None = None) -> SweepResult:
    """Apply every fail-safe stage that is due at ``now`` (default: the store's clock)."""
    ops = policy.operations
    now = now or store.clock()
    result = SweepResult(now=iso(now))
    with store.transaction() as conn:
        from .batches import deliver_due, queued_ids  # due batches go out once, whichever replica sweeps first

        result.batches = deliver_due(store, conn, policy.decisions.batching, policy, now)
        waiting = queued_ids(store, conn)  # a queued question's clock starts when its batch reaches the person
        records = [r for r in store.find_escalations(RecordFilter(statuses=OPEN_STATUSES), conn=conn)
                   if r["id"] not in waiting]
        done = store.failsafe.fired_on_open(conn)
        result.open = len(records)
        for record in records:
            result.transitions.extend(apply_due(store, conn, ops, record, now, done.get(record["id"], set())))
        from .oversight_chain import sweep_oversight  # oversight tickets' chain hops and cool-downs

        result.transitions.extend(sweep_oversight(store, conn, policy, now))
    return result


def apply_due(store: Store, conn: sqlite3.Connection, ops: OperationsFile, record: dict[str, Any],
              now: datetime, done: set[str] | None = None) -> list[Transition]:
    """Fire the stages of one open escalation that are due, in order, inside ``conn``'s transaction."""
    if done is None:
        done = store.failsafe.fired(conn, record["id"])
    fired: list[Transition] = []
    held: list[Notice] = []  # late stages: only the last one reached is sent
    grace = max(ops.sweep_interval * 2, CATCH_UP_GRACE)
    while True:
        step = _next_due(ops, record, now, done)
        if step is None:
            break
        stage, rule, due = step
        recorded = store.failsafe.record(conn, record["id"], stage, iso(due))
        done.add(stage)
        if not recorded:  # another sweeper got there first
            continue
        late = now - due > grace
        record, notice = _fire(store, conn, ops, record, stage, rule, due)
        if late:
            held.append(notice)
        else:
            notice.enqueue(store, conn, ops)
        fired.append(Transition(record["id"], stage, iso(due), late))
    if held:
        held[-1].enqueue(store, conn, ops, passed=[n.stage for n in held[:-1]])
    return fired


def _next_due(ops: OperationsFile, record: dict[str, Any], now: datetime,
              done: set[str]) -> tuple[str, FailSafe, datetime] | None:
    """The earliest stage due for ``record``. Agent escalations follow the fail-safe stages on the
    clock of their current severity; manual and pipeline records follow their routing level's
    response time (one ``overdue_level_N`` stage per level, so raising a level restarts that clock)
    and only the lock of an L4."""
    agent = record.get("source") == "agent"
    start = parse_iso(record.get("severity_at") or record["created_at"])
    found: tuple[str, FailSafe, datetime] | None = None
    if not agent and record.get("source") != "oversight":  # an oversight ticket follows its team's chain
        stage = f"{OVERDUE}{record['level']}"
        if record.get("due_at") and stage not in done and parse_iso(record["due_at"]) <= now:
            overdue = FailSafe(severity=record["severity"], after=timedelta(0), action="notify",
                               notify=ops.notifications.on_change, recipient=record.get("assignee") or "assignee")
            found = (stage, overdue, parse_iso(record["due_at"]))
    for stage, rule in ops.failsafes.items():
        # an L4 record stops its task whoever filed it; the other stages are agent timers
        if stage in done or rule.severity.value != record["severity"] or not (agent or rule.action == "lock"):
            continue
        due = start + rule.after
        if due <= now and (found is None or due < found[2]):
            found = (stage, rule, due)
    return found


@dataclass(frozen=True)
class Notice:
    """A stage's notification, queued by ``apply_due`` (at once, or only the last one when catching up)."""

    stage: str
    rule: FailSafe
    record: dict[str, Any]
    text: str

    def enqueue(self, store: Store, conn: sqlite3.Connection, ops: OperationsFile,
                passed: list[str] | None = None) -> None:
        text = self.text
        if passed is not None:
            text += " (caught up after a pause" + (f"; also passed: {', '.join(passed)}" if passed else "") + ")"
        notify.enqueue(store, conn, ops, self.rule.notify, self.stage, self.record, text, self.rule.recipient,
                       catch_up=passed is not None)


def _fire(store: Store, conn: sqlite3.Connection, ops: OperationsFile, record: dict[str, Any], stage: str,
          rule: FailSafe, due: datetime) -> tuple[dict[str, Any], Notice]:
    esc_id, now = record["id"], store.now()
    conversation, task = record.get("conversation_id"), record.get("task_id")
    changes: dict[str, Any] = {}
    data: dict[str, Any] = {"due_at": iso(due), "severity": record["severity"]}
    if stage.startswith(OVERDUE):  # a manual or pipeline record past its level's response time
        level = ops.levels.get(record["level"])
        name = f"level {record['level']} ({level.name})" if level else f"level {record['level']}"
        text = f"Overdue: no response within the {name} response time. {record.get('reason') or ''}".strip()
        store.audit(conn, "overdue", "failsafe", escalation_id=esc_id, conversation_id=conversation, task_id=task,
                    data={**data, "level": record["level"]})
        updated = store.escalation(esc_id, conn)
        return updated, Notice("overdue", rule, updated, text)
    if rule.action == "remind":
        changes = {"reminded_at": now}
        text = f"Reminder: unanswered for {_age(record, due)}. {record.get('reason') or ''}".strip()
    elif rule.action == "raise":
        if rule.to is None:  # the policy's validation gives every raise stage the severity it raises to
            raise PolicyError("operations.yaml", f"failsafes.{stage}.to", "a raise stage needs the severity it raises to")
        new = rule.to.value
        route = ops.routing[rule.to]
        changes = {"severity": new, "severity_at": iso(due), "status": "raised", "raised_at": now,
                   "level": max(record["level"], route.level), "due_at": iso(due + route.respond_within)}
        if rule.assign_to:
            changes["assignee"] = rule.assign_to
        data.update(to=new)
        text = f"Unanswered for {_age(record, due)} at {record['severity']}: raised to {new}."
        if rule.awaiting_guidance and conversation and task:
            store.update_task(conn, conversation, task, awaiting_guidance=1)
            text += f" Task {task} is awaiting guidance."
    elif rule.action == "block":
        changes = {"status": "blocked", "blocked_at": now}
        text = f"Unresolved for {_age(record, due)} at {record['severity']}: added to the blocked-tasks report."
    elif rule.action == "reassign":
        changes = {"assignee": rule.assign_to}
        data.update(assignee=rule.assign_to, before=record.get("assignee"))
        text = f"Unanswered for {_age(record, due)} at {record['severity']}: reassigned to {rule.assign_to}."
    elif rule.action == "notify":
        text = f"Unanswered for {_age(record, due)} at {record['severity']}. {record.get('reason') or ''}".strip()
    else:  # lock
        text = "Critical escalation: a person must review it before any further action."
        if conversation and task:
            current = store.task(conn, conversation, task)
            if not current["locked"]:
                store.update_task(conn, conversation, task, locked=1, locked_at=now, locked_by_escalation=esc_id,
                                  locked_reason=f"L4 escalation {esc_id}: human review required")
            text += f" Task {task} is locked until a person unlocks it."
            data["task_locked"] = True
    if changes:
        store.update_escalation(conn, esc_id, **changes)
    store.audit(conn, f"failsafe_{stage}", "failsafe", escalation_id=esc_id, conversation_id=conversation,
                task_id=task, data={**data, "recipient": rule.recipient})
    updated = store.escalation(esc_id, conn)
    return updated, Notice(stage, rule, updated, text)


def _age(record: dict[str, Any], due: datetime) -> str:
    start = parse_iso(record.get("severity_at") or record["created_at"])
    return duration_label(round((due - start).total_seconds()))


def log_sweep(result: SweepResult) -> None:
    """One line per sweep; after downtime it says how much was caught up rather than listing it."""
    late = [t for t in result.transitions if t.late]
    if late:
        escalations = {t.escalation_id for t in late}
        oldest = min(t.due_at for t in late)
        log.warning("fail-safe catch-up: %d stages that fell due while no sweep ran (oldest due %s) applied to "
                    "%d escalations; one notice each for the stage reached; `escalation-matrix list --status "
                    "active` shows them", len(late), oldest, len(escalations))
    if result.batches:
        log.info("batches delivered at the end of their window: %s", ", ".join(map(str, result.batches)))
    on_time = len(result.transitions) - len(late)
    if on_time:
        log.info("fail-safe sweep: %d transitions", on_time)


class Sweeper:
    """Runs ``sweep`` every ``interval`` in a daemon thread; notifications go out on the
    ``notify.Dispatcher``'s own thread, woken after each sweep, so a slow receiver never delays a timer."""

    def __init__(self, store: Store, policy: Policy, interval: float | None = None):
        self.store, self.policy = store, policy
        self.interval = interval if interval is not None else policy.operations.sweep_interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalation-sweeper", daemon=True)
        self.dispatcher = notify.Dispatcher(store, policy.operations, self.interval)

    def start(self) -> "Sweeper":
        self.dispatcher.start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.dispatcher.stop(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = sweep(self.store, self.policy)
                if result.transitions:
                    log_sweep(result)
                self.dispatcher.wake()
                from .erase import erase_expired  # retention.personal_data

                erase_expired(self.store, self.policy)
            except Exception:  # the timer thread must survive a bad tick
                log.exception("fail-safe sweep failed; retrying in %.0f s", self.interval)
            self._stop.wait(self.interval)


def start_sweeper(store: Store, policy: Policy, interval: float | None = None) -> Sweeper:
    """Start the in-server timer thread; call ``.stop()`` on shutdown."""
    return Sweeper(store, policy, interval).start()
