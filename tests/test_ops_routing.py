"""Clocks per kind, the routing table and fail-safe stages as policy, on a real SQLite file with a
controlled clock: agent escalations follow the fail-safe stages of their severity, manual records
their routing level's response time; routing (severity -> level, assignee, channels, due time) and
the stages come from policies/operations.yaml, where an author can add a stage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mcp import Client

from clocks import T0
from escalation_matrix.errors import PolicyError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.ops_policy import OperationsFile, operations_policy
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import iso

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

HARM = "I want to kill myself"
PROD = {"environment": "production"}


def stages(result) -> list[str]:
    return [t.stage for t in result.transitions]


@pytest.fixture
def guard(policy, fake_classifier, store):
    return ConversationGuard(policy, fake_classifier, store)


def test_a_manual_level_1_record_keeps_its_24_hour_clock(store, clock, policy):
    ops = Operations(store, policy)
    esc = ops.create("Customer asks for a refund exception", severity="L1", type="decision",
                     conversation_id="c1", task_id="t1")
    assert esc["due_at"] == iso(T0 + timedelta(hours=24))
    for minutes in (5, 15, 30, 60, 23 * 60):
        assert stages(sweep(store, policy, clock.at(minutes=minutes))) == []
    record = store.escalation(esc["id"])
    assert (record["severity"], record["level"], record["assignee"], record["status"]) == (
        "L1", 1, "operations-team", "open")
    assert stages(sweep(store, policy, clock.at(hours=24))) == ["overdue_level_1"]
    assert stages(sweep(store, policy, clock.at(hours=30))) == []  # once per level
    assert [e["action"] for e in store.audit_entries(escalation_id=esc["id"])][-1] == "overdue"


def test_raising_a_manual_record_restarts_its_clock_at_the_new_level(store, clock, policy):
    ops = Operations(store, policy)
    esc = ops.create("Needs engineering", severity="L2", type="technical")
    clock.at(hours=10)
    raised = ops.raise_level(esc["id"], 2, "needs a code change")
    assert raised["due_at"] == iso(T0 + timedelta(hours=10 + 48))
    assert stages(sweep(store, policy, clock.at(hours=30))) == []  # level 1's 24 h no longer applies
    assert stages(sweep(store, policy, clock.at(hours=58))) == ["overdue_level_2"]


def test_agent_escalations_get_their_route_assignee_and_due_time(guard, store, clock):
    scope = guard.escalate("c1", "Deploy the new build", context=PROD)
    record = store.escalation(scope.escalation_id)
    assert (record["severity"], record["level"], record["assignee"]) == ("L2", 1, "operations-team")
    assert record["due_at"] == iso(T0 + timedelta(minutes=15))
    stop = guard.escalate("c2", HARM)
    record = store.escalation(stop.escalation_id)
    assert (record["severity"], record["level"], record["assignee"], record["due_at"]) == (
        "L4", 1, "operations-lead", iso(T0))
    events = store._conn().execute("SELECT event, channel FROM outbox WHERE escalation_id = ?",
                                   (stop.escalation_id,)).fetchall()
    assert ("created", "log") in [tuple(e) for e in events]  # told at once, not at the next sweep


def test_a_raise_by_the_fail_safe_moves_the_due_time_to_the_new_severity(guard, store, clock, policy):
    esc = guard.clarify("c1", "Write the report", "Which tone do you want?", missing="the tone")
    assert store.escalation(esc.escalation_id)["severity"] == "L1"
    sweep(store, policy, clock.at(minutes=15))
    record = store.escalation(esc.escalation_id)
    assert (record["severity"], record["due_at"]) == ("L2", iso(T0 + timedelta(minutes=15 + 15)))


def test_a_policy_author_adds_a_stage_that_reroutes_to_the_deputy(data_copy, store, clock):
    path = data_copy / "policies" / "operations.yaml"
    path.write_text(path.read_text().replace(
        "  lock_task:", "  reroute_to_deputy:\n    severity: L3\n    after: 4h\n    action: reassign\n"
                        "    assign_to: deputy\n    notify: [log]\n  lock_task:"))
    policy = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    esc = Operations(store, policy).create("Specialist needed", severity="L3", type="technical", source="agent",
                                           conversation_id="c1", task_id="t1")
    assert stages(sweep(store, policy, clock.at(hours=3, minutes=59))) == []
    assert stages(sweep(store, policy, clock.at(hours=4))) == ["reroute_to_deputy"]
    assert store.escalation(esc["id"])["assignee"] == "deputy"
    assert stages(sweep(store, policy, clock.at(hours=24))) == ["blocked_report"]


@pytest.mark.parametrize("failsafes, message", [
    ({"reroute": {"severity": "L3", "after": "4h"}}, "failsafes.reroute: add an action"),
    ({"reroute": {"severity": "L3", "after": "4h", "action": "reassign"}}, "needs assign_to"),
    ({"up": {"severity": "L4", "after": "1m", "action": "raise"}}, "raise needs `to` above L4"),
])
def test_a_stage_that_cannot_work_is_a_policy_error(failsafes, message):
    with pytest.raises(ValueError, match=message):
        OperationsFile.model_validate({"failsafes": failsafes})


def test_routing_must_cover_every_severity_and_known_levels(data_copy):
    path = data_copy / "policies" / "operations.yaml"
    text = path.read_text()
    path.write_text(text.replace("  L4: {level: 1, assignee: operations-lead", "  L4: {level: 7, assignee: operations-lead"))
    with pytest.raises(PolicyError, match="routing uses levels \\[7\\]"):
        load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")


def test_the_shipped_routing_sends_l4_to_the_operations_lead_at_once(policy):
    route = operations_policy(policy).routing
    assert (route["L4"].assignee, route["L4"].respond_within) == ("operations-lead", timedelta(0))
    assert operations_policy(policy).levels[route["L4"].level].response_target < timedelta(weeks=1)


def test_resolved_at_is_recorded_once(store, clock, policy, guard):
    ops = Operations(store, policy)
    manual = ops.create("Check the data", severity="L2", type="technical")
    clock.at(minutes=20)
    ops.resolve(manual["id"], "fixed the data")
    clock.at(minutes=40)
    ops.close(manual["id"], "done")
    assert store.escalation(manual["id"])["resolved_at"] == iso(T0 + timedelta(minutes=20))
    agent = guard.clarify("c9", "Write the report", "Which tone do you want?", missing="the tone")
    clock.at(minutes=50)
    guard.respond(agent.escalation_id, "Friendly")
    assert store.escalation(agent.escalation_id)["resolved_at"] == iso(T0 + timedelta(minutes=50))


async def test_over_mcp_an_l4_escalation_is_routed_to_the_operations_lead(guard, store):
    async with Client(build_server(guard=guard)) as client:
        result = (await client.call_tool("escalate", {"conversation_id": "m", "request": HARM})).structured_content
    assert result["action"] == "stop"
    assert store.escalation(result["escalation_id"])["assignee"] == "operations-lead"
