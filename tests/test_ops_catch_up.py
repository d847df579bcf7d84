"""Start-up on an old database: the fail-safe stages that fell due while nothing swept are applied
in order and audited, but each escalation gets one notice (for the stage it reached), and the log
says what was caught up in one line instead of a warning per stage."""

from __future__ import annotations

import pytest
import json
import logging
from collections import Counter

from escalation_matrix.ops.failsafe import log_sweep, sweep
from escalation_matrix.ops.notify import deliver
from escalation_matrix.ops_policy import operations_policy
from escalation_matrix.ops.records import Operations

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

OLD = 40


def fill_old(store, clock, policy) -> list[str]:
    """40 L1 escalations, created and announced at T0; then the server is stopped for two days."""
    ops = Operations(store, policy)
    # agent escalations: the fail-safe stages watch those (manual records follow their level's clock)
    ids = [ops.create(f"question {i}", severity="L1", type="clarification", source="agent")["id"]
           for i in range(OLD)]
    deliver(store, operations_policy(policy), clock.moment)  # the 'created' notices went out back then
    return ids


def failsafe_notices(store) -> list[tuple[str, str, str, dict]]:
    rows = store._conn().execute("SELECT escalation_id, event, channel, payload FROM outbox "
                                 "WHERE event != 'created' ORDER BY id").fetchall()
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def test_catching_up_sends_one_notice_per_escalation_for_the_stage_reached(store, clock, policy):
    ids = fill_old(store, clock, policy)
    result = sweep(store, policy, clock.at(days=2))
    assert len(result.transitions) == 4 * OLD and all(t.late for t in result.transitions)
    notices = failsafe_notices(store)
    per_escalation = Counter((esc, channel) for esc, _, channel, _ in notices)
    assert set(per_escalation.values()) == {1} and {esc for esc, _ in per_escalation} == set(ids)
    assert {event for _, event, _, _ in notices} == {"blocked_report"}
    body = notices[0][3]
    assert body["escalation_matrix"]["catch_up"] is True
    assert "also passed: reminder, raise_to_l2, raise_to_l3" in body["text"]
    # every stage passed on the way is still audited, in order
    actions = [e["action"] for e in store.audit_entries(escalation_id=ids[0]) if e["action"].startswith("failsafe_")]
    assert actions == ["failsafe_reminder", "failsafe_raise_to_l2", "failsafe_raise_to_l3", "failsafe_blocked_report"]


def test_the_log_summarises_the_catch_up_in_one_line(store, clock, policy, caplog):
    fill_old(store, clock, policy)
    now = clock.at(days=2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="escalation_matrix"):
        result = sweep(store, policy, now)
        log_sweep(result)
        report = deliver(store, operations_policy(policy), now)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines  # the sweep's summary and the log channel's summary
    assert f"{4 * OLD} stages that fell due while no sweep ran" in lines[0] and f"to {OLD} escalations" in lines[0]
    assert f"{OLD} overdue escalations caught up after a pause ({OLD} blocked report)" in lines[1]
    assert "and 35 more" in lines[1]
    assert report.sent >= OLD and report.failed == 0
    pending = store._conn().execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    assert pending == 0


def test_a_second_sweep_after_catching_up_sends_nothing_more(store, clock, policy):
    fill_old(store, clock, policy)
    sweep(store, policy, clock.at(days=2))
    before = len(failsafe_notices(store))
    assert sweep(store, policy, clock.at(days=3)).transitions == []
    assert len(failsafe_notices(store)) == before


def test_stages_swept_on_time_each_get_their_own_notice(store, clock, policy, caplog):
    ops = Operations(store, policy)
    esc = ops.create("on time", severity="L1", type="clarification", source="agent")["id"]
    deliver(store, operations_policy(policy), clock.moment)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="escalation_matrix.notify"):
        for minute in (5, 15, 45):
            result = sweep(store, policy, clock.at(minutes=minute))
            assert not any(t.late for t in result.transitions)
            deliver(store, operations_policy(policy), clock.moment)
    events = [event for e, event, _, body in failsafe_notices(store) if e == esc and not body["escalation_matrix"]["catch_up"]]
    assert events == ["reminder", "raise_to_l2", "raise_to_l3"]
    assert len([r for r in caplog.records if esc in r.getMessage()]) == 3
