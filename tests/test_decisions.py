"""Decision assessment: criticality from weighted context factors (policies/decisions.yaml), the
decision type, strategic vs tactical, and "critical always escalates" through the guard, the real
in-memory MCP client and the card. The fake embedder keeps it fast; criticality reads the context
only, so the verdicts here do not depend on the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from escalation_matrix.assess import assess, with_confidence
from escalation_matrix.decisions_policy import Autonomy
from escalation_matrix.errors import PolicyError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import Classification, EscalationType
from escalation_matrix.render import card
from escalation_matrix.store import Store
from test_cli_core import run

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

CRITICAL = {"environment": "production", "security_impact": True}


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


@pytest.mark.parametrize("context, expected, factors", [
    ({}, 0.3, []),
    ({"environment": "staging"}, 0.3, []),
    ({"environment": "production"}, 0.9, ["production"]),
    ({"environment": "production", "security_impact": True}, 0.9455, ["production", "security"]),
    ({"financial_impact": 5000}, 0.5, ["financial"]),
    ({"estimated_cost": 20000}, 1.0, ["financial"]),
    ({"data_loss": True}, 0.95, ["data_loss"]),
    ({"reversible": False, "affects_compliance": True}, 0.875, ["compliance", "irreversible"]),
    ({"reversible": True}, 0.3, []),
])
def test_criticality_is_the_weighted_average_of_the_factors_that_hold(policy, context, expected, factors):
    a = assess("Change the retry limit", context, policy.decisions)
    assert a.criticality == pytest.approx(expected, abs=1e-4)
    assert a.factors == factors
    assert a.critical is (expected > 0.9)


@pytest.mark.parametrize("request_text, context, expected", [
    ("Deploy version 2.3 to the cluster", {}, "deployment"),
    ("Refactor the billing module into microservices", {}, "architecture"),
    ("Delete the stale rows from the orders table", {}, "data_change"),
    ("Send the bulk email to the list", {}, "batch"),
    ("Write a haiku about autumn", {}, "other"),
    ("Write a haiku about autumn", {"decision_type": "architecture"}, "architecture"),
])
def test_decision_type_comes_from_the_context_else_the_request_words(policy, request_text, context, expected):
    assert assess(request_text, context, policy.decisions).decision_type == expected


def test_strategic_and_tactical_indicators_decide_the_category(policy):
    strategic = assess("Refactor the platform", {"affected_systems": 4, "impact_days": 365}, policy.decisions)
    tactical = assess("Fix the typo in the config", {"reversible": True, "impact_days": 1}, policy.decisions)
    assert strategic.category == "strategic"
    assert {"architecture_change", "cross_system", "long_term_impact"} <= set(strategic.indicators)
    assert tactical.category == "tactical" and "bug_fix" in tactical.indicators
    assert strategic.impact.startswith("A strategic architecture decision")


def test_low_confidence_proceed_names_what_to_check(policy):
    c = Classification(request="Tidy the report", type=EscalationType.none, trigger="clear_request", severity=None,
                       confidence=0.7, scores={"none": 0.7, "decision": 0.2, "scope": 0.1}, decided_by="model")
    a = with_confidence(assess(c.request, {}, policy.decisions), c, Autonomy(min_confidence=0.95))
    assert a.low_confidence and a.autonomy == 0.7
    assert a.check[0].startswith("decision (0.20): check that no choice")
    sure = c.model_copy(update={"scores": {"none": 0.97, "decision": 0.03}, "confidence": 0.97})
    assert not with_confidence(assess(c.request, {}, policy.decisions), sure, Autonomy()).low_confidence


def test_a_critical_decision_escalates_even_when_the_classifier_proceeds(guard):
    plain = guard.classify("Tidy the variable names in the helper module")
    assert plain.action.value == "proceed" and plain.decision.criticality == 0.3
    result = guard.classify("Tidy the variable names in the helper module", CRITICAL)
    assert (result.action.value, result.type.value, result.trigger) == ("escalate", "decision", "requires_judgment")
    assert result.decision.critical and result.decision.factors == ["production", "security"]
    assert not result.decision.low_confidence  # a person decides: acting alone is not in question


def test_security_change_rule_escalates_at_l3(guard):
    result = guard.classify("Update the login flow", {"decision_type": "security", "impact_level": "high"})
    assert (result.type.value, result.severity.value) == ("decision", "L3")
    low = guard.classify("Update the login flow", {"decision_type": "security", "impact_level": "low"})
    assert low.severity is None or low.severity.value != "L3"


async def test_mcp_classify_and_escalate_carry_the_assessment_and_critical_escalates(guard):
    server = build_server(guard=guard)
    async with Client(server) as client:
        classified = (await client.call_tool("classify", {
            "request": "Tidy the variable names in the helper module", "context": CRITICAL})).structured_content
        escalated = (await client.call_tool("escalate", {
            "conversation_id": "c-crit", "request": "Tidy the variable names in the helper module",
            "context": CRITICAL})).structured_content
    assert classified["action"] == "escalate" and classified["decision"]["critical"] is True
    assert "criticality 0.95" in classified["decision"]["impact"]
    assert escalated["action"] == "escalate" and escalated["escalation_id"]
    assert escalated["decision"]["decision_type"] == "other"
    record = guard.store.escalation(escalated["escalation_id"])
    assert (record["type"], record["trigger"]) == ("decision", "requires_judgment")


def test_the_card_shows_the_assessment(guard, policy):
    result = guard.classify("Deploy the release to the cluster", CRITICAL)
    shown = card(result, policy)
    assert shown.decision is not None and shown.decision.decision_type == "deployment"
    assert shown.decision.critical


def _copy_with(data_copy: Path, old: str, new: str) -> Path:
    path = data_copy / "policies/decisions.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return data_copy


def test_policy_check_names_the_file_and_field_of_an_unknown_context_field(data_copy):
    _copy_with(data_copy, "{field: data_loss, op: eq, value: true}", "{field: dataloss, op: eq, value: true}")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "decisions.yaml: criticality.factors.3.when.0.field: unknown context field 'dataloss'" in result.output
    assert "did you mean 'data_loss'?" in result.output


@pytest.mark.parametrize("old, new, where", [
    ("escalate_above: 0.9", "escalate_above: 1.5", "criticality.escalate_above"),
    ("min_confidence: 0.95", "min_confidence: 0", "autonomy.min_confidence"),
    ("trigger: requires_judgment", "trigger: nosuch", "criticality.trigger"),
    ("target_rate: 0.05", "target_rate: 2", "adaptive.target_rate"),
])
def test_policy_check_rejects_bad_decision_values(data_copy, old, new, where):
    _copy_with(data_copy, old, new)
    with pytest.raises(PolicyError) as err:
        load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    assert any(p[0].endswith("decisions.yaml") and p[1].startswith(where) for p in err.value.problems), \
        err.value.problems


def test_unusual_pattern_escalates_an_unsure_request_when_risky_requests_jump(guard):
    request = "Tidy the variable names in the helper module"
    plain = guard.classify(request)
    assert plain.action.value == "proceed" and plain.confidence < 0.7
    with guard.store.transaction() as conn:
        for _ in range(20):
            guard.store.record_decision(conn, "escalate", "none", "proceed", conversation_id="odd")
    calm = guard.escalate("odd", request)
    assert calm.action.value == "proceed" and calm.decision.unusual is None  # history only, no jump
    with guard.store.transaction() as conn:
        for _ in range(10):
            guard.store.record_decision(conn, "escalate", "scope", "escalate", severity="L2", conversation_id="odd",
                                        outcome="repeated")
    result = guard.escalate("odd", request)
    assert (result.action.value, result.type.value) == ("escalate", "decision")
    assert "rose from 0% to 100%" in result.decision.unusual
    record = guard.store.escalation(result.escalation_id)
    assert record["trigger"] == "requires_judgment"


def test_a_decision_template_words_the_decision_and_marks_missing_facts(guard):
    result = guard.classify("Deploy the billing service", {"environment": "production", "version": "2.4"})
    assert result.decision.summary == ("Deploy [missing: service] 2.4 to production. Rollback: [missing: "
                                       "rollback_plan]. Criticality 0.90 (tactical).")
    german = guard.classify("Deploy the billing service", {"service": "billing"}, locale="de")
    assert german.decision.summary.startswith("billing [missing: version] nach [missing: environment] ausrollen.")
    assert guard.classify("Write a haiku about autumn").decision.summary is None  # 'other' has no template


@pytest.mark.parametrize("where, text, message", [
    ("phrases/en/decisions/deployment.j2", "Deploy {{ service ", "deployment.j2: line 1: template error"),
    ("phrases/en/decisions/rollout.j2", "Roll out {{ service }}", "unknown decision type 'rollout'"),
])
def test_policy_check_reports_a_broken_decision_template(data_copy, where, text, message):
    (data_copy / where).write_text(text)
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2 and message in result.output, result.output


def test_every_locale_has_the_same_decision_templates(data_copy):
    (data_copy / "phrases/de/decisions/batch.j2").unlink()
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2
    assert "batch.j2: missing; locale 'en' has this decision template - add it here" in result.output
