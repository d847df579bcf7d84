"""Rule priorities: when several escalating rules fire on one request, the highest priority decides
type, trigger and severity; equal priorities (the shipped policy) fall back to the decision-tree
order, so nothing changes until an author sets one. The result, the stored record and the card name
the rule that decided; a safety rule that fires always decides; `policy check` refuses a priority on
a proceed rule. Fake embedder: the rules decide these requests."""

from __future__ import annotations

import pytest

from escalation_matrix.classifier import Classifier
from escalation_matrix.embedder import get_embedder
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.models import EscalationType, RuleMatch, Severity
from escalation_matrix.render import card
from escalation_matrix.rules import deciding
from escalation_matrix.store import Store
from test_cli_core import run
from test_policy_check import edit, load

DEPLOY = "Deploy the new pricing page"
BOTH = {"environment": "production", "estimated_cost": 500}  # production_deployment (scope) and high_cost (decision)


def match(name: str, etype: EscalationType, priority: int = 0) -> RuleMatch:
    return RuleMatch(name=name, type=etype, trigger="t", reason="r", priority=priority)


@pytest.mark.parametrize("priorities, expected", [
    ((0, 0, 0), ["a", "b"]),  # equal: all escalating rules decide, the tree order picks among them
    ((5, 0, 0), ["a"]),
    ((0, 7, 0), ["b"]),
    ((3, 3, 9), ["a", "b"]),  # a proceed rule never takes part
])
def test_the_highest_priority_escalating_rules_decide(priorities, expected):
    matches = [match("a", EscalationType.scope, priorities[0]), match("b", EscalationType.decision, priorities[1]),
               match("c", EscalationType.none, priorities[2])]
    assert [m.name for m in deciding(matches)] == expected


def test_no_escalating_rule_decides_nothing():
    assert deciding([match("c", EscalationType.none)]) == []


def test_equal_priorities_keep_the_decision_tree_order_and_name_the_rule(fake_classifier):
    c = fake_classifier.classify(DEPLOY, BOTH)
    assert {m.name for m in c.rules} >= {"production_deployment", "high_cost"}
    assert (c.type, c.trigger, c.rule, c.decided_by) == (EscalationType.decision, "requires_judgment", "high_cost", "rule")


def prioritised(data_copy, rule: str, priority: int) -> Classifier:
    edit(data_copy / "policies/rules.yaml", f"  - name: {rule}\n", f"  - name: {rule}\n    priority: {priority}\n")
    return Classifier(load(data_copy), embedder=get_embedder("fake"))


def test_a_higher_priority_rule_decides_type_trigger_and_severity(data_copy):
    c = prioritised(data_copy, "production_deployment", 10).classify(DEPLOY, BOTH)
    assert (c.type, c.trigger, c.severity, c.rule) == (EscalationType.scope, "exceeds_scope", Severity.L2,
                                                       "production_deployment")
    assert {m.name: m.priority for m in c.rules}["production_deployment"] == 10


def test_a_lower_priority_rule_of_the_same_type_no_longer_sets_the_severity(data_copy):
    # security_change (decision, L3) and high_cost (decision, L2) both fire: equal priorities take the
    # higher severity; a priority on high_cost makes it decide alone
    context = {"decision_type": "security", "impact_level": "high", "estimated_cost": 500}
    plain = Classifier(load(data_copy), embedder=get_embedder("fake")).classify("Rotate the signing keys", context)
    assert (plain.severity, plain.rule) == (Severity.L3, "security_change")
    ranked = prioritised(data_copy, "high_cost", 5).classify("Rotate the signing keys", context)
    assert (ranked.type, ranked.severity, ranked.rule) == (EscalationType.decision, Severity.L2, "high_cost")


def test_a_safety_rule_still_decides_first(data_copy):
    classifier = prioritised(data_copy, "self_harm_signal", 20)
    c = classifier.classify("I want to kill myself before the deploy", {"environment": "production"})
    assert (c.type, c.rule) == (EscalationType.safety, "self_harm_signal")


@pytest.mark.backends
def test_the_result_the_record_and_the_card_name_the_deciding_rule(data_copy, db_path):
    policy = load(data_copy)
    edit(data_copy / "policies/rules.yaml", "  - name: production_deployment\n",
         "  - name: production_deployment\n    priority: 10\n")
    ranked = load(data_copy)
    for p, rule, etype in ((policy, "high_cost", "decision"), (ranked, "production_deployment", "scope")):
        guard = ConversationGuard(p, Classifier(p, embedder=get_embedder("fake")), Store(db_path))
        result = guard.escalate(f"chat-{rule}", DEPLOY, context=BOTH)
        assert (result.type.value, result.decision.rule) == (etype, rule)
        assert guard.store.escalation(result.escalation_id)["assessment"]["rule"] == rule
        assert card(result).decision.rule == rule


@pytest.mark.parametrize("rule, priority, fragment", [
    ("production_deployment", 1001, "less than or equal to 1000"),
    ("production_deployment", -1, "greater than or equal to 0"),
    ("list_style_preference", 3, "a proceed rule never overrides one"),
])
def test_policy_check_refuses_bad_priorities(data_copy, rule, priority, fragment):
    edit(data_copy / "policies/rules.yaml", f"  - name: {rule}\n", f"  - name: {rule}\n    priority: {priority}\n")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "rules.yaml" in result.output and fragment in result.output


def test_a_safety_rule_is_never_outranked():
    matches = [match("a", EscalationType.scope, 100), match("s", EscalationType.safety, 0),
               match("t", EscalationType.safety, 2)]
    assert [m.name for m in deciding(matches)] == ["t"]


async def test_through_mcp_the_result_names_the_deciding_rule(data_copy, tmp_path):
    from mcp import Client

    from escalation_matrix.mcp_app import build_server

    edit(data_copy / "policies/rules.yaml", "  - name: production_deployment\n",
         "  - name: production_deployment\n    priority: 10\n")
    policy = load(data_copy)
    guard = ConversationGuard(policy, Classifier(policy, embedder=get_embedder("fake")), Store(tmp_path / "s.db"))
    async with Client(build_server(guard=guard)) as client:
        looked = (await client.call_tool("classify", {"request": DEPLOY, "context": BOTH})).structured_content
        made = (await client.call_tool("escalate", {"conversation_id": "c1", "request": DEPLOY,
                                                    "context": BOTH})).structured_content
    assert (looked["type"], looked["decision"]["rule"]) == ("scope", "production_deployment")
    assert (made["type"], made["decision"]["rule"]) == ("scope", "production_deployment")
