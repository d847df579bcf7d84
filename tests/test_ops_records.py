"""Escalation records (seed 004 steps 1-6) on a real SQLite file: readable per-year ids, operator
actions with their audit entries, closing with resolution, preventive measures and lessons learned,
and bad input that is refused with a clear message and leaves everything as it was."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from escalation_matrix.errors import InputError, NotFoundError, StateError
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends






@pytest.fixture
def ops(store, policy) -> Operations:
    return Operations(store, policy)


def manual(ops: Operations, reason: str = "Brand name needs a person", **kw) -> dict:
    return ops.create(reason, details="brand 'Acme/Acme Pro' merged", type="technical", severity="L2", **kw)


def snapshot(store: Store) -> dict:
    conn = store._conn()
    return {table: [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("escalations", "notes", "audit", "outbox", "tasks", "counters")}


def test_ids_are_readable_and_follow_a_per_year_sequence(ops, clock):
    ids = [manual(ops)["id"] for _ in range(3)]
    assert ids == ["ESC-2026-001", "ESC-2026-002", "ESC-2026-003"]
    assert all(re.fullmatch(r"ESC-\d{4}-\d{3,}", i) for i in ids)
    clock.moment = datetime(2027, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
    assert manual(ops)["id"] == "ESC-2027-001"
    assert manual(ops)["id"] == "ESC-2027-002"


def test_the_sequence_survives_a_restart(db_path, policy, clock):
    first = Store(db_path, clock=clock)
    manual(Operations(first, policy))
    first.close()
    second = Store(db_path, clock=clock)
    assert manual(Operations(second, policy))["id"] == "ESC-2026-002"
    second.close()


def test_a_manual_escalation_records_its_reason_level_target_and_assignee(ops, policy):
    record = manual(ops, level=2, assigned_to="ed.allison@example.com", conversation_id="c1", task_id="t1")
    assert (record["source"], record["status"], record["level"]) == ("manual", "open", 2)
    assert record["assignee"] == "ed.allison@example.com"
    assert record["reason"] == "Brand name needs a person" and "Acme" in record["details"]
    assert record["due_at"] == "2026-03-04T09:00:00Z"  # engineering: 48 h (seed 004)
    assert record["created_at"] == "2026-03-02T09:00:00Z"
    default = manual(ops, level=3)
    assert default["assignee"] == "product-team" and default["due_at"] == "2026-03-09T09:00:00Z"
    assert [e["action"] for e in ops.store.audit_entries(escalation_id=record["id"])] == ["escalation_created"]


def test_assign_note_raise_resolve_close_in_order(ops, clock):
    esc = manual(ops)["id"]
    clock.moment += timedelta(minutes=1)
    assert ops.assign(esc, "ed@example.com", by="lead")["assignee"] == "ed@example.com"
    ops.note(esc, "Asked the data team for the brand list", by="ed@example.com")
    raised = ops.raise_level(esc, 2, "needs an algorithm change", by="ed@example.com")
    assert (raised["level"], raised["status"], raised["assignee"]) == (2, "raised", "engineering-team")
    clock.moment += timedelta(hours=5)
    resolved = ops.resolve(esc, "split the brand in two", method="brand splitting", by="eng")
    assert (resolved["status"], resolved["resolution_method"]) == ("resolved", "brand splitting")
    closed = ops.close(esc, preventive_measures="a rule for slashes in brand names",
                       lessons_learned="check brand variants before merging", by="eng")
    assert closed["status"] == "closed" and closed["resolution"] == "split the brand in two"
    assert (closed["preventive_measures"], closed["lessons_learned"]) == (
        "a rule for slashes in brand names", "check brand variants before merging")
    assert (closed["closed_by"], closed["closed_at"]) == ("eng", "2026-03-02T14:01:00Z")
    shown = ops.show(esc)
    assert [n["text"] for n in shown["notes"]] == ["Asked the data team for the brand list"]
    assert [a["action"] for a in shown["audit"]] == [
        "escalation_created", "escalation_assigned", "note_added", "escalation_raised", "escalation_resolved",
        "escalation_closed"]
    assert shown["audit"][1]["data"] == {"before": {"assignee": "operations-team"},
                                         "after": {"assignee": "ed@example.com"}}


def test_close_in_one_step_records_resolution_measures_and_lessons(ops):
    esc = manual(ops)["id"]
    closed = ops.close(esc, "data corrected", preventive_measures="validation added", lessons_learned="validate early",
                       method="data correction")
    assert (closed["status"], closed["resolution"], closed["resolution_method"]) == (
        "closed", "data corrected", "data correction")


def test_answer_then_close(ops):
    esc = manual(ops, conversation_id="c1", task_id="t1")["id"]
    answered = ops.answer(esc, "Go with option 1", by="ed")
    assert (answered["status"], answered["answer"], answered["answered_by"]) == ("answered", "Go with option 1", "ed")
    assert ops.close(esc, "answered")["status"] == "closed"


def test_list_filters(ops, clock):
    a = manual(ops)["id"]
    clock.moment += timedelta(hours=3)
    b = ops.create("Unclear", type="clarification", severity="L1", level=1, assigned_to="amy")["id"]
    ops.close(a, "done")
    assert [r["id"] for r in ops.list(status="active")] == [b]
    assert [r["id"] for r in ops.list(status="closed")] == [a]
    assert [r["id"] for r in ops.list(assignee="amy")] == [b]
    assert [r["id"] for r in ops.list(type="technical")] == [a]
    assert [r["id"] for r in ops.list(older_than=timedelta(hours=2))] == [a]
    assert [r["id"] for r in ops.list()] == [b, a]


# (action, expected error, words the message must contain)
BAD = [
    (lambda o, e: o.assign("ESC-2026-999", "ed"), NotFoundError, "ESC-2026-999"),
    (lambda o, e: o.note("ESC-2026-999", "hi"), NotFoundError, "not found"),
    (lambda o, e: o.close("nonsense", "x"), NotFoundError, "ESC-2026-001"),
    (lambda o, e: o.raise_level(e, 9, "why not"), InputError, "routing level 9"),
    (lambda o, e: o.raise_level(e, 1, "same level"), StateError, "must be higher"),
    (lambda o, e: o.raise_level(e, 2, " "), InputError, "reason"),
    (lambda o, e: o.assign(e, " "), InputError, "assignee"),
    (lambda o, e: o.note(e, ""), InputError, "note is empty"),
    (lambda o, e: o.close(e, ""), InputError, "resolution"),
    (lambda o, e: o.create("x", level=9), InputError, "routing level 9"),
    (lambda o, e: o.create(" "), InputError, "reason"),
    (lambda o, e: o.create("x", type="none"), InputError, "proceed"),
    (lambda o, e: o.create("x", type="weather"), InputError, "unknown type"),
    (lambda o, e: o.create("x", severity="L9"), InputError, "unknown severity"),
    (lambda o, e: o.list(status="sleeping"), InputError, "unknown status"),
]


@pytest.mark.parametrize(("action", "error", "words"), BAD)
def test_bad_input_gives_a_clear_error_and_changes_nothing(ops, action, error, words):
    esc = manual(ops)["id"]
    before = snapshot(ops.store)
    with pytest.raises(error, match=words):
        action(ops, esc)
    assert snapshot(ops.store) == before


def test_closing_a_closed_escalation_is_refused_and_changes_nothing(ops):
    esc = manual(ops)["id"]
    ops.close(esc, "done", preventive_measures="p", lessons_learned="l")
    before = snapshot(ops.store)
    with pytest.raises(StateError, match="already closed"):
        ops.close(esc, "done again")
    for change in (lambda: ops.assign(esc, "ed"), lambda: ops.raise_level(esc, 3, "late"),
                   lambda: ops.answer(esc, "late answer")):
        with pytest.raises(StateError, match="closed"):
            change()
    assert snapshot(ops.store) == before
