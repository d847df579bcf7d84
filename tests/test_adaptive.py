"""The adaptive escalation target: outcomes (respond necessary=..., an answer that agrees with the
default, CLI outcome / missed), per-type offsets planned in bounded steps with safety on the floor,
applied to the decision, audited with before/after and revertible (CLI thresholds ...). Real SQLite
file, the real in-memory MCP client, the CLI through click's runner; the fake embedder."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from mcp import Client

from escalation_matrix import adaptive
from escalation_matrix.classifier import TYPES, decide_trained
from escalation_matrix.cli import main
from escalation_matrix.decisions_policy import Adaptive
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import EscalationType as T
from escalation_matrix.policy import TrainedDecision
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

SETTINGS = Adaptive(target_rate=0.05, tolerance=0.01, step=0.02, max_offset=0.05, min_outcomes=2)


def cli(db_path, *args):
    return CliRunner().invoke(main, [*args, "--db", str(db_path)], catch_exceptions=False)


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


def window(decisions, escalations, **outcomes) -> adaptive.Window:
    w = adaptive.Window(decisions=decisions, escalations=Counter(escalations))
    for kind, counts in outcomes.items():
        getattr(w, kind).update(counts)
    return w


def test_too_many_escalations_raise_the_offsets_of_the_types_that_escalated_never_safety():
    changes = adaptive.plan(window(100, {T.decision: 10, T.safety: 5, T.context: 5}), {}, SETTINGS)
    moved = {c.type: c.after for c in changes}
    assert moved == {T.decision: 0.02, T.context: 0.01}
    assert T.safety not in moved  # the floor


def test_too_few_escalations_lower_the_offsets_in_bounded_steps():
    changes = adaptive.plan(window(100, {T.decision: 1}), {T.decision: -0.04}, SETTINGS)
    moved = {c.type: c.after for c in changes}
    assert moved[T.decision] == -0.05  # bounded by max_offset
    assert all(abs(c.after - c.before) <= SETTINGS.step + 1e-9 for c in changes)


def test_outcomes_weigh_in_and_a_missed_escalation_never_raises_its_type():
    necessary = adaptive.plan(window(100, {T.decision: 10}, necessary={T.decision: 4}), {}, SETTINGS)
    assert all(c.type is not T.decision for c in necessary)  # all necessary: the pressure is cancelled
    missed = adaptive.plan(window(100, {T.decision: 10}, missed={T.decision: 1}), {}, SETTINGS)
    assert all(c.type is not T.decision for c in missed)
    on_target = adaptive.plan(window(100, {T.decision: 5}, missed={T.context: 2}), {}, SETTINGS)
    assert [(c.type, c.after) for c in on_target] == [(T.context, -0.02)]


def test_an_offset_makes_the_trained_decision_escalate_less_and_safety_ignores_it():
    probs = np.zeros(len(TYPES))
    probs[TYPES.index(T.none)], probs[TYPES.index(T.decision)] = 0.45, 0.55
    decision = TrainedDecision(safety=0.3, margin=0.0)
    assert decide_trained(probs, [], decision, []).type is T.decision
    assert decide_trained(probs, [], decision, [], offsets={T.decision: 0.2}).type is T.none
    probs[TYPES.index(T.safety)] = 0.4
    assert decide_trained(probs, [], decision, [], offsets={T.safety: 0.5}).type is T.safety


async def test_respond_through_mcp_records_the_outcome(guard):
    async with Client(build_server(guard=guard)) as client:
        first = (await client.call_tool("escalate", {
            "conversation_id": "c1", "request": "Deploy the new build", "context": {"environment": "production"},
            "options": ["Deploy now", "Wait for Monday"]})).structured_content
        answered = await client.call_tool("respond", {"escalation_id": first["escalation_id"], "answer": "Go",
                                                      "conversation_id": "c1", "necessary": False})
    assert not answered.is_error, answered.content
    [row] = adaptive.outcomes(guard.store)
    assert (row["escalation_id"], row["type"], row["outcome"]) == (first["escalation_id"], "scope", "unnecessary")


def test_an_answer_that_agrees_with_the_default_counts_as_unnecessary(guard):
    first = guard.escalate("c2", "Deploy the new build", context={"environment": "production"},
                           options=["Deploy now", "Wait for Monday"])
    guard.respond(first.escalation_id, "deploy now", role="agent", conversation_id="c2")
    [row] = adaptive.outcomes(guard.store)
    assert row["outcome"] == "unnecessary" and "default" in row["note"]


def test_cli_outcome_missed_adjust_history_and_revert(guard, db_path):
    esc = guard.escalate("c3", "Deploy the new build", context={"environment": "production"})
    assert cli(db_path, "answer", esc.escalation_id, "Wait", "--necessary").exit_code == 0
    result = cli(db_path, "outcome", esc.escalation_id, "unnecessary", "--note", "routine")
    assert result.exit_code == 0 and "marked unnecessary" in result.output
    assert [r["outcome"] for r in adaptive.outcomes(guard.store)] == ["unnecessary"]  # a later mark replaces
    assert cli(db_path, "missed", "--type", "decision").exit_code == 0
    with guard.store.transaction() as conn:  # 1 escalation in 31 requests: below the 5 % target
        for _ in range(30):
            guard.store.record_decision(conn, "classify", "none", "proceed")
    bad = CliRunner().invoke(main, ["missed", "--type", "pattern", "--db", str(db_path)])
    assert bad.exit_code != 0 and "has no threshold" in bad.output
    adjusted = cli(db_path, "thresholds", "adjust")
    assert adjusted.exit_code == 0, adjusted.output
    assert "decision: +0.000 -> -0.020" in adjusted.output  # too few escalations
    assert "safety" not in adjusted.output
    assert guard.offsets()[T.decision] == pytest.approx(-0.02)
    history = cli(db_path, "thresholds", "history").output
    change_id = int(history.split("decision:")[0].split("#")[-1].split()[0])
    reverted = cli(db_path, "thresholds", "revert", str(change_id))
    assert reverted.exit_code == 0 and "-0.020 -> +0.000" in reverted.output
    assert T.decision not in guard.offsets()
    again = CliRunner().invoke(main, ["thresholds", "revert", str(change_id), "--db", str(db_path)])
    assert again.exit_code != 0 and "already reverted" in again.output
    actions = [e["action"] for e in guard.store.audit_entries()]
    assert actions.count("threshold_change") >= 2 and "outcome" in actions


def test_cli_thresholds_adjust_sets_one_type_but_never_the_floor(db_path, guard):
    ok = cli(db_path, "thresholds", "adjust", "--type", "decision", "--offset", "0.1", "--reason", "too chatty")
    assert ok.exit_code == 0 and "+0.000 -> +0.100" in ok.output and "too chatty" in ok.output
    floor = CliRunner().invoke(main, ["thresholds", "adjust", "--type", "safety", "--offset", "0.1",
                                      "--db", str(db_path)])
    assert floor.exit_code != 0 and "floor" in floor.output
    shown = cli(db_path, "thresholds", "show").output
    assert "offset +0.100" in shown and "floor: never moves" in shown


def test_the_guard_adjusts_by_itself_every_window_of_requests(policy, fake_classifier, db_path):
    decisions = policy.decisions.model_copy(update={"adaptive": Adaptive(window=10, step=0.02)})
    small = dataclasses.replace(policy, decisions=decisions)
    guard = ConversationGuard(small, fake_classifier, Store(db_path))
    for i in range(10):
        guard.escalate(f"w{i}", "Deploy the new build", context={"environment": "production"})
    changes = adaptive.history(guard.store)
    assert changes and all(c["by"] == "adaptive" and c["decisions"] == 10 for c in changes)
    assert {c["type"] for c in changes} == {"scope"}  # every escalation was scope: the rate is 100 %
