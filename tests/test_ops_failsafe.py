"""Fail-safe timers (seed 002 §13, durations from policies/operations.yaml) on a real SQLite file
with a controlled clock: every stage fires once, at its time, survives a restart, and never touches
an answered escalation."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from escalation_matrix.answers import unlock_task
from escalation_matrix.ops.failsafe import start_sweeper, sweep
from escalation_matrix.ops.records import Operations
from escalation_matrix.ops.reports import build_report
from escalation_matrix.store import Store, utcnow
from clocks import T0, Clock

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends






def create(store: Store, policy, severity: str, task: str = "t1", type_: str = "decision") -> dict:
    """An agent escalation: the fail-safe stages watch agent escalations only."""
    return Operations(store, policy).create(f"needs a person ({severity})", severity=severity, type=type_,
                                            conversation_id="c1", task_id=task, source="agent")


def stages(result) -> list[str]:
    return [t.stage for t in result.transitions]


def audit_actions(store: Store, esc_id: str) -> list[str]:
    return [e["action"] for e in store.audit_entries(escalation_id=esc_id) if e["action"].startswith("failsafe_")]


def task_row(store: Store, task: str = "t1") -> dict:
    return dict(store._conn().execute("SELECT * FROM tasks WHERE conversation_id = 'c1' AND task_id = ?",
                                      (task,)).fetchone())


def test_the_timer_durations_come_from_the_shipped_policy(policy):
    from escalation_matrix.ops_policy import operations_policy

    fs = operations_policy(policy).failsafes
    assert (fs.reminder.after, fs.raise_to_l2.after, fs.raise_to_l3.after, fs.blocked_report.after) == (
        timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=24))
    assert fs.lock_task.after == timedelta(0)


def test_the_fail_safe_messages_say_how_long_in_the_same_words_as_the_card(store, clock, policy):
    esc = create(store, policy, "L1")
    sweep(store, policy, clock.at(minutes=5))
    sweep(store, policy, clock.at(minutes=15))
    texts = [json.loads(row[0])["text"] for row in store._conn().execute(
        "SELECT payload FROM outbox WHERE escalation_id = ? AND channel = 'log' ORDER BY id", (esc["id"],))]
    assert any("Reminder: unanswered for 5 min." in t for t in texts), texts
    assert any("Unanswered for 15 min at L1: raised to L2." in t for t in texts), texts


def test_l1_unanswered_5_minutes_gets_one_reminder(store, clock, policy):
    esc = create(store, policy, "L1")
    assert stages(sweep(store, policy, clock.at(minutes=4, seconds=59))) == []
    assert stages(sweep(store, policy, clock.at(minutes=5))) == ["reminder"]
    assert stages(sweep(store, policy, clock.at(minutes=5))) == []
    assert stages(sweep(store, policy, clock.at(minutes=14))) == []
    record = store.escalation(esc["id"])
    assert record["severity"] == "L1" and record["status"] == "open"
    assert record["reminded_at"] == "2026-03-02T09:05:00Z"
    assert audit_actions(store, esc["id"]) == ["failsafe_reminder"]


def test_l1_unanswered_15_minutes_is_raised_to_l2_with_a_supervisor_notification(store, clock, policy):
    esc = create(store, policy, "L1")
    sweep(store, policy, clock.at(minutes=5))
    assert stages(sweep(store, policy, clock.at(minutes=15))) == ["raise_to_l2"]
    record = store.escalation(esc["id"])
    assert (record["severity"], record["status"], record["severity_at"]) == ("L2", "raised", "2026-03-02T09:15:00Z")
    entry = [e for e in store.audit_entries(escalation_id=esc["id"]) if e["action"] == "failsafe_raise_to_l2"]
    assert entry[0]["data"]["recipient"] == "supervisor" and entry[0]["data"]["to"] == "L2"
    queued = store._conn().execute("SELECT payload FROM outbox WHERE escalation_id = ? AND event = 'raise_to_l2'",
                                   (esc["id"],)).fetchall()
    assert queued and all("supervisor" in row[0] for row in queued)
    assert stages(sweep(store, policy, clock.at(minutes=20))) == []


def test_l2_unanswered_30_minutes_goes_to_l3_and_the_task_awaits_guidance(store, clock, policy):
    esc = create(store, policy, "L2")
    assert task_row(store)["awaiting_guidance"] == 0
    assert stages(sweep(store, policy, clock.at(minutes=29))) == []
    assert stages(sweep(store, policy, clock.at(minutes=30))) == ["raise_to_l3"]
    record = store.escalation(esc["id"])
    assert (record["severity"], record["status"], record["assignee"]) == ("L3", "raised", "team-lead")
    assert task_row(store)["awaiting_guidance"] == 1
    assert audit_actions(store, esc["id"]) == ["failsafe_raise_to_l3"]


def test_l3_unresolved_24_hours_is_blocked_and_listed_in_the_blocked_tasks_report(store, clock, policy):
    esc = create(store, policy, "L3")
    assert stages(sweep(store, policy, clock.at(hours=23, minutes=59))) == []
    assert stages(sweep(store, policy, clock.at(hours=24))) == ["blocked_report"]
    assert store.escalation(esc["id"])["status"] == "blocked"
    report = build_report(store, policy, "daily", clock.moment.date())
    assert [b["id"] for b in report.blocked] == [esc["id"]]
    assert stages(sweep(store, policy, clock.at(hours=72))) == []
    assert audit_actions(store, esc["id"]) == ["failsafe_blocked_report"]


def test_l4_locks_the_task_at_once_until_a_person_unlocks_it(store, clock, policy):
    esc = create(store, policy, "L4", type_="safety")
    task = task_row(store)
    assert task["locked"] == 1 and task["locked_by_escalation"] == esc["id"]
    assert stages(sweep(store, policy, clock.at(minutes=1))) == []
    unlock_task(store, "c1", "t1", by="reviewer", reason="reviewed: request refused")
    assert task_row(store)["locked"] == 0
    assert stages(sweep(store, policy, clock.at(hours=2))) == []
    assert task_row(store)["locked"] == 0, "a reviewed task must not be locked again by the same escalation"
    assert audit_actions(store, esc["id"]) == ["failsafe_lock_task"]


def test_the_whole_chain_fires_each_stage_once_when_swept_every_five_minutes(store, clock, policy):
    esc = create(store, policy, "L1")
    fired = []
    for minute in range(0, 26 * 60, 5):
        fired += stages(sweep(store, policy, clock.at(minutes=minute)))
        fired += stages(sweep(store, policy, clock.at(minutes=minute)))  # a second sweeper at the same moment
    assert fired == ["reminder", "raise_to_l2", "raise_to_l3", "blocked_report"]
    assert audit_actions(store, esc["id"]) == [f"failsafe_{s}" for s in fired]
    record = store.escalation(esc["id"])
    assert (record["severity"], record["status"]) == ("L3", "blocked")


def test_a_late_sweep_catches_up_in_order_with_the_due_times(store, clock, policy):
    esc = create(store, policy, "L1")
    result = sweep(store, policy, clock.at(hours=2))
    assert [(t.stage, t.due_at) for t in result.transitions] == [
        ("reminder", "2026-03-02T09:05:00Z"), ("raise_to_l2", "2026-03-02T09:15:00Z"),
        ("raise_to_l3", "2026-03-02T09:45:00Z")]
    assert store.escalation(esc["id"])["severity"] == "L3"


def test_a_restart_in_the_middle_neither_repeats_nor_skips_a_stage(db_path, policy):
    clock = Clock()
    first = Store(db_path, clock=clock)
    esc = create(first, policy, "L1")
    assert stages(sweep(first, policy, clock.at(minutes=6))) == ["reminder"]
    first.close()  # the server stops; a new process opens the same file

    clock2 = Clock(clock.moment)
    second = Store(db_path, clock=clock2)
    assert stages(sweep(second, policy, clock2.at(minutes=6))) == []
    assert stages(sweep(second, policy, clock2.at(minutes=15))) == ["raise_to_l2"]
    second.close()

    third = Store(db_path, clock=Clock())
    assert stages(sweep(third, policy, T0 + timedelta(minutes=44))) == []
    assert stages(sweep(third, policy, T0 + timedelta(minutes=45))) == ["raise_to_l3"]
    assert audit_actions(third, esc["id"]) == ["failsafe_reminder", "failsafe_raise_to_l2", "failsafe_raise_to_l3"]
    third.close()


def test_two_processes_sweeping_the_same_file_fire_each_stage_once(db_path, policy):
    clock = Clock()
    stores = [Store(db_path, clock=clock) for _ in range(2)]
    ids = [create(stores[0], policy, "L1", task=f"t{i}")["id"] for i in range(5)]
    clock.at(hours=30)
    fired: list[str] = []
    barrier = threading.Barrier(2)

    def run(store: Store) -> None:
        barrier.wait()
        for _ in range(3):
            fired.extend(f"{t.escalation_id}:{t.stage}" for t in sweep(store, policy, clock.moment).transitions)
        store.close()

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {f"{i}:{s}" for i in ids for s in ("reminder", "raise_to_l2", "raise_to_l3", "blocked_report")}
    assert sorted(fired) == sorted(expected)


@pytest.mark.parametrize("severity", ["L1", "L2", "L3"])
def test_an_answered_escalation_never_transitions(store, clock, policy, severity):
    esc = create(store, policy, severity)
    clock.at(minutes=2)
    Operations(store, policy).answer(esc["id"], "Go with option 1", by="ed")
    for hours in (1, 25, 24 * 30):
        assert stages(sweep(store, policy, clock.at(hours=hours))) == []
    record = store.escalation(esc["id"])
    assert (record["status"], record["severity"]) == ("answered", severity)
    assert audit_actions(store, esc["id"]) == []


def test_a_resolved_escalation_is_not_blocked_later(store, clock, policy):
    esc = create(store, policy, "L3")
    clock.at(hours=3)
    Operations(store, policy).resolve(esc["id"], "fixed the data")
    assert stages(sweep(store, policy, clock.at(hours=48))) == []
    assert store.escalation(esc["id"])["status"] == "resolved"


def test_the_in_server_sweeper_thread_applies_due_stages_and_stops_cleanly(db_path, policy):
    offset = {"value": timedelta(0)}
    store = Store(db_path, clock=lambda: utcnow() + offset["value"])
    esc = create(store, policy, "L1")
    offset["value"] = timedelta(minutes=6)  # real time runs on; the escalation is now 6 minutes old
    sweeper = start_sweeper(store, policy, interval=0.05)
    try:
        deadline = time.monotonic() + 20
        while not audit_actions(store, esc["id"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert not sweeper._thread.is_alive()
    assert audit_actions(store, esc["id"]) == ["failsafe_reminder"]
    delivered = store._conn().execute("SELECT status FROM outbox WHERE escalation_id = ? AND event = 'reminder'",
                                      (esc["id"],)).fetchall()
    assert delivered and {row[0] for row in delivered} <= {"sent", "pending"}
    store.close()
