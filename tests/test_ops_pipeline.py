"""Pipeline triggers (seed 004) with the limits from policies/operations.yaml: each trigger
escalates, at its limit and not before, and an item gets exactly one escalation while it is open."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalation_matrix.errors import InputError
from escalation_matrix.ops.pipeline import ItemReport, report_item
from escalation_matrix.ops_policy import operations_policy
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store
from clocks import T0

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends



@pytest.fixture
def store(db_path: Path):
    s = Store(db_path, clock=lambda: T0)
    yield s
    s.close()


def test_the_limits_come_from_the_shipped_policy(policy):
    limits = operations_policy(policy).pipeline
    assert (limits.iteration_limit, limits.consecutive_failures, limits.min_confidence,
            limits.low_confidence_after) == (10, 3, 0.5, 3)


# (report, expected trigger or None); the first limit broken wins, in seed 004 order
CASES = [
    ({"iterations": 9}, None),
    ({"iterations": 10}, "iteration_limit"),
    ({"iterations": 2, "failures": 2}, None),
    ({"iterations": 3, "failures": 3}, "consecutive_failures"),
    ({"iterations": 1, "error": "data-quality"}, "data_quality"),
    ({"iterations": 1, "error": "system"}, "system_error"),
    ({"iterations": 2, "confidence": 0.2}, None),  # low, but too early to judge
    ({"iterations": 3, "confidence": 0.49}, "low_confidence"),
    ({"iterations": 8, "confidence": 0.5}, None),
    ({"iterations": 12, "failures": 5, "error": "system"}, "system_error"),
]


@pytest.mark.parametrize(("fields", "trigger"), CASES)
def test_each_trigger_escalates_at_its_limit_and_not_before(store, policy, fields, trigger):
    outcome = report_item(store, policy, ItemReport(item_id="brand-42", **fields))
    assert outcome.trigger == trigger
    assert outcome.escalated is (trigger is not None)
    records = store.escalations()
    assert len(records) == (0 if trigger is None else 1)
    if trigger:
        spec = operations_policy(policy).pipeline.triggers[trigger]
        record = records[0]
        assert record["id"] == outcome.escalation_id
        assert (record["source"], record["task_id"], record["reason"]) == ("pipeline", "brand-42", spec.reason)
        assert (record["severity"], record["level"]) == (spec.severity.value, spec.level)


def test_an_item_gets_one_escalation_while_it_is_open(store, policy):
    first = report_item(store, policy, ItemReport(item_id="brand-7", iterations=10))
    again = [report_item(store, policy, ItemReport(item_id="brand-7", iterations=n, failures=4))
             for n in (11, 12, 13)]
    assert all(o.escalation_id == first.escalation_id and o.repeated for o in again)
    assert len(store.escalations()) == 1
    assert len([e for e in store.audit_entries() if e["action"] == "escalation_created"]) == 1
    # an item within limits still reports its open escalation
    calm = report_item(store, policy, ItemReport(item_id="brand-7", iterations=1))
    assert (calm.escalated, calm.escalation_id, calm.trigger) == (True, first.escalation_id, None)


def test_a_closed_escalation_lets_the_item_escalate_again(store, policy):
    first = report_item(store, policy, {"item_id": "brand-7", "iterations": 10})
    Operations(store, policy).close(first.escalation_id, "split the brand", preventive_measures="rule added",
                                    lessons_learned="check brand names first")
    second = report_item(store, policy, {"item_id": "brand-7", "iterations": 10})
    assert second.escalated and not second.repeated and second.escalation_id != first.escalation_id


def test_items_escalate_independently(store, policy):
    a = report_item(store, policy, {"item_id": "a", "iterations": 10})
    b = report_item(store, policy, {"item_id": "b", "error": "system", "iterations": 0})
    assert a.escalation_id != b.escalation_id and len(store.escalations()) == 2


def test_the_item_state_is_recorded(store, policy):
    report_item(store, policy, {"item_id": "brand-9", "iterations": 4, "failures": 1, "confidence": 0.7})
    row = store._conn().execute("SELECT * FROM pipeline_items WHERE item_id = 'brand-9'").fetchone()
    assert (row["iterations"], row["consecutive_failures"], row["confidence"], row["escalation_id"]) == (4, 1, 0.7, None)


@pytest.mark.parametrize("bad", [
    {"item_id": "", "iterations": 1},
    {"item_id": "x", "iterations": -1},
    {"item_id": "x", "iterations": 1, "confidence": 1.5},
    {"item_id": "x", "iterations": 1, "error": "disk-full"},
])
def test_a_bad_report_is_refused_and_changes_nothing(store, policy, bad):
    with pytest.raises(InputError, match="invalid pipeline report"):
        report_item(store, policy, bad)
    assert store.escalations() == []
    assert store._conn().execute("SELECT COUNT(*) FROM pipeline_items").fetchone()[0] == 0
