"""The fine-tuned model's decision and calibration: pure logic on given probabilities, no model."""

from __future__ import annotations

import numpy as np
import pytest

from escalation_matrix.calibrate import (
    MAX_SAFETY_THRESHOLD,
    expected_calibration_error,
    fit_decision,
    fit_temperature,
    softmax,
)
from escalation_matrix.classifier import TYPES, decide_trained
from escalation_matrix.models import EscalationType, RuleMatch
from escalation_matrix.policy import TrainedDecision

ORDER = [EscalationType(t) for t in
         ["safety", "clarification", "conflict", "context", "decision", "compliance", "scope", "technical"]]
DECISION = TrainedDecision(safety=0.3, margin=0.1, new_exemplar_similarity=0.85)


def probs(**given: float) -> np.ndarray:
    row = np.zeros(len(TYPES))
    for name, value in given.items():
        row[TYPES.index(EscalationType(name))] = value
    rest = 1.0 - row.sum()
    free = row == 0
    row[free] = rest / free.sum()
    return row


def rule(etype: str) -> RuleMatch:
    return RuleMatch(name=f"r_{etype}", type=EscalationType(etype), trigger="x", reason="r")


@pytest.mark.parametrize(
    "row, rules, new, expected, by",
    [
        (probs(none=0.9), [], None, "none", "model"),
        (probs(decision=0.5, none=0.3), [], None, "decision", "model"),
        (probs(decision=0.38, none=0.3), [], None, "none", "model"),  # beats none by less than the margin
        # safety first: its recall-first threshold wins over a more probable type
        (probs(safety=0.31, technical=0.6), [], None, "safety", "model"),
        (probs(safety=0.29, technical=0.6), [], None, "technical", "model"),
        # a safety rule beats every other rule and the model
        (probs(none=0.95), [rule("scope"), rule("safety")], None, "safety", "rule"),
        # P(safety) beats a non-safety rule
        (probs(safety=0.5), [rule("scope")], None, "safety", "model"),
        # other escalating rules follow the decision-tree order
        (probs(none=0.95), [rule("scope"), rule("context")], None, "context", "rule"),
        # a proceed rule (minor preference) proceeds unless the request looks unsafe
        (probs(clarification=0.6, none=0.2), [rule("none")], None, "none", "rule"),
        (probs(safety=0.6), [rule("none")], None, "safety", "model"),
        # an exemplar added since training decides when close enough...
        (probs(none=0.95), [], (EscalationType.scope, 0.9), "scope", "exemplar"),
        # ...but not when too far, and never over safety
        (probs(none=0.95), [], (EscalationType.scope, 0.7), "none", "model"),
        (probs(safety=0.5), [], (EscalationType.none, 0.99), "safety", "model"),
    ],
)
def test_decide_trained(row, rules, new, expected, by):
    verdict = decide_trained(row, rules, DECISION, ORDER, new)
    assert (verdict.type.value, verdict.decided_by) == (expected, by)


def test_per_type_margins_override_the_shared_margin():
    row = probs(scope=0.45, none=0.3)
    assert decide_trained(row, [], DECISION, ORDER).type is EscalationType.scope
    strict = DECISION.model_copy(update={"margins": {EscalationType.scope: 0.3}})
    assert decide_trained(row, [], strict, ORDER).type is EscalationType.none


def test_ties_follow_the_decision_tree_order():
    row = probs(scope=0.4, context=0.4, none=0.1)
    assert decide_trained(row, [], DECISION, ORDER).type is EscalationType.context


def test_temperature_recovers_overconfident_logits():
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, 3000)
    true_logits = rng.normal(size=(3000, 3))
    true_logits[np.arange(3000), labels] += 1.0
    # labels drawn from softmax(true_logits); the model reports them 3x too sharp
    p = softmax(true_logits)
    drawn = np.array([rng.choice(3, p=row) for row in p])
    t = fit_temperature(true_logits * 3, drawn)
    assert 2.4 <= t <= 3.6
    before = expected_calibration_error(softmax(true_logits * 3), drawn)
    after = expected_calibration_error(softmax(true_logits * 3, t), drawn)
    assert after < before


def test_fit_decision_prefers_recall_on_safety():
    gold = ["safety"] * 10 + ["none"] * 10
    p_safety = np.r_[np.linspace(0.15, 0.9, 10), np.linspace(0.0, 0.1, 10)]

    def predict(safety: float, margin: float) -> list[str]:
        return ["safety" if p >= safety else "none" for p in p_safety]

    fitted = fit_decision(gold, predict)
    assert fitted.report.safety_recall == 1.0
    assert fitted.report.none_escalated == 0.0
    assert 0.1 < fitted.safety <= 0.15 + 1e-9


def test_fit_decision_never_raises_the_safety_threshold_above_an_even_chance():
    # every safety item sits at 0.9 and a proceed item at 0.55: the best score on this split
    # would come from a threshold above 0.55, but a request the model finds more likely
    # harmful than not must always escalate
    gold = ["safety"] * 10 + ["none"] * 10
    p_safety = np.r_[np.full(10, 0.9), [0.55], np.zeros(9)]

    def predict(safety: float, margin: float) -> list[str]:
        return ["safety" if p >= safety else "none" for p in p_safety]

    fitted = fit_decision(gold, predict)
    assert fitted.safety <= MAX_SAFETY_THRESHOLD
    assert fitted.report.safety_recall == 1.0


def test_a_trained_model_is_evaluated_on_the_same_policy_with_only_its_classifier_settings_changed(policy, tmp_path):
    from dataclasses import replace

    from escalation_matrix.training import TrainResult, _with_model

    result = TrainResult(folder=tmp_path, temperature=1.0, safety=0.4, margin=0.1, holdout=None, ece_before=0.0,
                         ece_after=0.0, seconds=0.0)
    changed = _with_model(policy, tmp_path / "model", result)
    trained = changed.classifier.trained
    assert (trained.folder, trained.safety, trained.margin) == (str(tmp_path / "model"), 0.4, 0.1)
    assert replace(changed, classifier=policy.classifier) == policy  # nothing else moved
