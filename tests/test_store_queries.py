"""The store's named queries on a SQLite file and on PostgreSQL: lists asked for with a
RecordFilter and a named order, a stage recorded once, and writes of several query groups kept in
one transaction."""

from __future__ import annotations

import pytest

from escalation_matrix.queries.records import RecordFilter
from escalation_matrix.store import OPEN_STATUSES, Store

pytestmark = pytest.mark.backends


def add(store: Store, reason: str, **fields: object) -> str:
    with store.transaction() as conn:
        return store.insert_escalation(conn, {"type": "technical", "trigger": "t", "severity": "L2", "reason": reason,
                                              "request": reason, **fields})


def test_a_filter_selects_by_status_assignee_in_any_case_and_words_taken_literally(store: Store) -> None:
    first = add(store, "Disk 100% full on db_1", assignee="Ana@Example.com")
    add(store, "Disk 1000 full on dbx1", assignee="ana@example.com")  # '%' and '_' are not wildcards
    closed = add(store, "Disk 100% full on db_1", assignee="ana@example.com", status="closed")
    match = RecordFilter(statuses=OPEN_STATUSES, assignee_any_case="ANA@EXAMPLE.COM", words=("100%", "db_1"),
                         searched=("reason",))
    assert [r["id"] for r in store.find_escalations(match)] == [first]
    assert store.count_escalations(match) == 1
    assert store.count_escalations(RecordFilter(statuses=("closed",))) == 1
    assert [r["id"] for r in store.find_escalations(RecordFilter(statuses=("closed",)))] == [closed]


def test_named_orders_and_pages(store: Store, clock) -> None:
    ids = [add(store, f"question {n}") for n in range(5)]
    assert [r["id"] for r in store.find_escalations(order="created")] == ids
    assert [r["id"] for r in store.find_escalations(order="newest")] == ids[::-1]
    assert [r["id"] for r in store.find_escalations(order="sequence", limit=2, offset=2)] == ids[2:4]


def test_a_stage_is_recorded_once(store: Store) -> None:
    esc = add(store, "late")
    with store.transaction() as conn:
        assert store.failsafe.record(conn, esc, "remind", "2026-03-02T09:15:00Z") is True
        assert store.failsafe.record(conn, esc, "remind", "2026-03-02T09:16:00Z") is False
    assert store.failsafe.of_escalation(esc) == [{"stage": "remind", "at": "2026-03-02T09:15:00Z"}]


def test_writes_of_several_query_groups_roll_back_together(store: Store) -> None:
    esc = add(store, "atomic")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.notes.add(conn, esc, "ops", "a note")
        store.outbox.queue(conn, esc, "created", "log", None, "{}", store.now())
        store.failsafe.record(conn, esc, "remind", store.now())
        raise RuntimeError("the caller fails half-way")
    assert store.notes.of_escalation(esc) == []
    assert store.outbox.entries(escalation_id=esc) == []
    assert store.failsafe.of_escalation(esc) == []


def test_the_decision_log_is_read_by_conversation_and_by_agent_newest_first(store: Store) -> None:
    from escalation_matrix.queries import owners

    with store.transaction() as conn:
        owners.claim(conn, "c-1", "agent-a", store.now())
        for conversation, action in [("c-1", "proceed"), ("c-2", "escalate"), ("c-1", "stop"), ("c-3", "wait")]:
            store.record_decision(conn, "escalate", "decision", action, conversation_id=conversation)
    assert store.decisions.conversation_actions("c-1", 10) == ["stop", "proceed"]
    assert store.decisions.conversation_actions("c-1", 1) == ["stop"]
    assert store.decisions.owner("c-1") == "agent-a" and store.decisions.owner("c-2") is None
    assert store.decisions.agent_actions("agent-a", "local", 10) == ["stop", "proceed"]
    assert store.decisions.agent_actions("local", "local", 10) == ["wait", "escalate"]  # unclaimed conversations


def test_the_decision_log_is_indexed_by_conversation(store: Store, backend: str) -> None:
    """The unusual-pattern check reads a conversation's latest decisions on every call."""
    sql = ("SELECT indexname FROM pg_indexes WHERE tablename = 'decisions'" if backend == "postgresql"
           else "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions'")
    assert "decisions_conversation" in {row[0] for row in store._conn().execute(sql)}
