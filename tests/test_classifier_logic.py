"""Pure decision logic with the deterministic fake embedder: fast, no model."""

from __future__ import annotations

import numpy as np
import pytest

from escalation_matrix.classifier import TYPES, decide
from escalation_matrix.conditions import holds
from escalation_matrix.errors import InputError
from escalation_matrix.matching import minor_preference
from escalation_matrix.models import Classification, EscalationType, RuleMatch
from escalation_matrix.policy import ClassifierFile, Condition

ORDER = [EscalationType(t) for t in
         ["safety", "clarification", "conflict", "context", "decision", "compliance", "scope", "technical"]]


def scores(**given: float) -> np.ndarray:
    row = np.full(len(TYPES), 0.1, dtype=np.float32)
    for name, value in given.items():
        row[TYPES.index(EscalationType(name))] = value
    return row


def rule(etype: str, trigger: str = "x") -> RuleMatch:
    return RuleMatch(name=f"r_{etype}", type=EscalationType(etype), trigger=trigger, reason="r")


SETTINGS = ClassifierFile(default_threshold=0.1, tie_margin=0.02)


@pytest.mark.parametrize(
    "row, rules, expected",
    [
        (scores(clarification=0.7, none=0.5), [], "clarification"),
        (scores(clarification=0.55, none=0.5), [], "none"),  # leads none by less than its threshold
        (scores(clarification=0.7, none=0.8), [], "none"),
        (scores(technical=0.9, safety=0.65, none=0.5), [], "safety"),  # safety is checked first
        (scores(scope=0.70, context=0.71, none=0.5), [], "context"),  # a tie follows the decision-tree order
        (scores(scope=0.60, context=0.71, none=0.5), [], "context"),
        (scores(scope=0.75, context=0.71, none=0.5), [], "scope"),  # 0.04 apart: not a tie, the best wins
        (scores(), [rule("scope"), rule("safety")], "safety"),
        (scores(decision=0.9), [rule("compliance")], "compliance"),  # rules beat embeddings
        (scores(decision=0.9), [rule("none")], "none"),  # a proceed rule (minor preference)
        (scores(safety=0.9), [rule("none")], "safety"),  # ...unless the request looks unsafe
    ],
)
def test_decide_follows_the_decision_tree(row, rules, expected):
    assert decide(row, rules, SETTINGS, ORDER).type.value == expected


def test_per_type_thresholds_override_the_default():
    row = scores(decision=0.62, none=0.5)
    assert decide(row, [], SETTINGS, ORDER).type is EscalationType.decision
    strict = {EscalationType.decision: 0.2}
    assert decide(row, [], SETTINGS, ORDER, strict).type is EscalationType.none


@pytest.mark.parametrize(
    "field, op, value, context, expected",
    [
        ("environment", "eq", "production", {"environment": "Production"}, True),
        ("environment", "eq", "production", {"environment": "staging"}, False),
        ("environment", "eq", "production", {}, False),
        ("record_count", "gt", 1000, {"record_count": 5000}, True),
        ("record_count", "gt", 1000, {"record_count": "5000"}, True),
        ("record_count", "gt", 1000, {"record_count": "many"}, False),
        ("estimated_cost", "le", 100, {"estimated_cost": 100}, True),
        ("breaking_change", "eq", True, {"breaking_change": "yes"}, True),
        ("breaking_change", "eq", True, {"breaking_change": False}, False),
        ("environment", "in", ["production", "prod"], {"environment": "prod"}, True),
        ("environment", "not_in", ["production"], {"environment": "dev"}, True),
        ("tags", "contains", "pii", {"tags": ["pii", "eu"]}, True),
        ("summary", "matches", r"\bdrop\s+table\b", {"summary": "DROP TABLE users"}, True),
        ("ticket", "exists", None, {"ticket": "T-1"}, True),
        ("ticket", "exists", None, {}, False),
        ("__class__", "eq", "x", {"__class__": "y"}, False),
    ],
)
def test_condition_evaluates_field_op_value_without_code(field, op, value, context, expected):
    assert holds(Condition(field=field, op=op, value=value), context) is expected


@pytest.mark.parametrize(
    "value, error",
    [("", "request is empty"), ("   \n ", "request is empty"), (42, "request must be a string")],
)
def test_classify_rejects_bad_request_with_a_clear_message(fake_classifier, value, error):
    with pytest.raises(InputError, match=error):
        fake_classifier.classify(value)


def test_classify_many_matches_classify_one_by_one(fake_classifier):
    texts = ["Take care of it.", "Deploy this to production now.", "Translate the intro into German."]
    batch = fake_classifier.classify_many(texts)
    single = [fake_classifier.classify(t) for t in texts]
    assert [b.type for b in batch] == [s.type for s in single]
    assert [b.scores for b in batch] == [s.scores for s in single]


def test_exemplar_vectors_are_cached_on_disk_by_model_and_content(policy, tmp_path):
    from escalation_matrix.classifier import Classifier
    from escalation_matrix.embedder import HashEmbedder

    class Counting(HashEmbedder):
        calls = 0

        def encode(self, texts):
            Counting.calls += len(texts)
            return super().encode(texts)

    Classifier(policy, embedder=Counting(), cache=tmp_path)
    first = Counting.calls
    Classifier(policy, embedder=Counting(), cache=tmp_path)
    assert first == len(policy.exemplars)
    assert Counting.calls == first  # the second start read the cache
    assert len(list(tmp_path.glob("exemplars-*.npz"))) == 1  # one store per encoder, keyed per text


@pytest.mark.parametrize("method", ["knn", "centroid", "linear"])
def test_every_scoring_method_gives_one_score_per_type(policy, method):
    from dataclasses import replace

    from escalation_matrix.classifier import Classifier
    from escalation_matrix.embedder import get_embedder

    settings = policy.classifier.model_copy(update={"method": method})
    clf = Classifier(replace(policy, classifier=settings), embedder=get_embedder("fake"))
    result = clf.classify("Can you clarify the thing?")
    assert set(result.scores) == {t.value for t in TYPES}
    assert 0.0 <= result.confidence <= 1.0


def test_fit_takes_the_middle_of_the_best_plateau():
    from escalation_matrix.fit import _plateau_middle

    grid = np.linspace(-0.3, 0.3, 61)
    best = (grid >= 0.02 - 1e-9) & (grid <= 0.10 + 1e-9)
    assert _plateau_middle(grid, best) == pytest.approx(0.06)
    best[5] = True  # a shorter run elsewhere does not pull the choice away
    assert _plateau_middle(grid, best) == pytest.approx(0.06)


def test_fit_leaves_the_threshold_of_a_type_absent_from_the_file(fake_classifier):
    from escalation_matrix.dataset import Item
    from escalation_matrix.fit import fit_thresholds
    rows = [("Take care of it.", "clarification"), ("What is 2 + 2?", "none"),
            ("Do the thing from before.", "clarification"), ("List three fruits.", "none")]
    items = [Item(text=t, label=label, context=None, raw={}) for t, label in rows]
    got = fit_thresholds(fake_classifier, items).thresholds
    for etype in (EscalationType.scope, EscalationType.decision, EscalationType.safety):
        assert got[etype] == fake_classifier.settings.threshold(etype)


def test_the_labels_of_a_labelled_file_are_its_gold_labels_and_an_unlabelled_item_is_an_input_error():
    from escalation_matrix.dataset import Item, labels
    items = [Item(text="Take care of it.", label="clarification", context=None, raw={}),
             Item(text="What is 2 + 2?", label="none", context=None, raw={})]
    assert labels(items) == ["clarification", "none"]
    with pytest.raises(InputError, match="no label: 'List three fruits.'"):
        labels([*items, Item(text="List three fruits.", label=None, context=None, raw={})])


def _none(decided_by: str, default: str | None = "Use title case.") -> Classification:
    return Classification(request="r", type=EscalationType.none, trigger="capitalization_preference",
                          severity=None, confidence=0.8, scores={}, decided_by=decided_by, default=default)


def test_an_asked_question_is_swallowed_as_minor_only_on_a_rule():
    plain_question = _none("embedding", default=None)
    # No question: the request's own minor-preference default applies, whatever decided it.
    assert minor_preference(None, _none("embedding")) is not None
    # With a question, an embedding guess on the request must not swallow the agent's question ...
    assert minor_preference(plain_question, _none("embedding")) is None
    assert minor_preference(_none("embedding"), _none("embedding")) is None
    # ... a policy rule on the question or on the request may.
    assert minor_preference(_none("rule"), _none("embedding")).decided_by == "rule"
    assert minor_preference(plain_question, _none("rule")).decided_by == "rule"
