"""The conflicting-constraints detector: requires and forbids the same thing."""

from __future__ import annotations

import pytest

from escalation_matrix.contradictions import ContradictionFinder

FINDER = ContradictionFinder.of([["shorter|more concise", "more detail|expand on"]])


@pytest.mark.parametrize(
    "text, found",
    [
        ('Include the keywords "mentor" and "growth". Avoid using the keyword "mentor".',
         ['"mentor" is both required and forbidden']),
        ("Include a bulleted list of three ingredients. Avoid using bullet points in the story.",
         ["'bullet' is both required and forbidden"]),
        ("The essay must contain at least 500 words. The essay must be at most 250 words.",
         ["the number of words cannot meet every limit (at least 500, at most 250)"]),
        ("Make this email shorter and add more detail about pricing.",
         ["'shorter' and 'more detail' pull in opposite directions"]),
    ],
)
def test_contradiction_is_found_and_explained(text, found):
    assert FINDER.find(text) == found


@pytest.mark.parametrize(
    "text",
    [
        'Include the keyword "growth" twice and avoid the word "failure".',
        "Make a list of bullet points with no more than five bullet points.",
        "Write exactly 250 words, with the first sentence containing no more than 20 words.",
        "Write the terms for our subscription with auto-renewal and no cancellation fee.",
        "Each paragraph must have at least 50 words and the whole story at most 400 words.",
        "Keep the tone formal and avoid slang.",
    ],
)
def test_consistent_constraints_are_not_a_conflict(text):
    assert FINDER.find(text) == []


def test_detector_reports_as_a_conflict_rule(fake_classifier):
    result = fake_classifier.classify('Use the word "synergy" in every paragraph, and never use "synergy".')
    assert result.type.value == "conflict"
    assert [r.name for r in result.rules] == ["contradicting_constraints"]
    assert result.decided_by == "rule"


def test_detector_can_be_switched_off_in_policy(policy):
    from dataclasses import replace

    from escalation_matrix.classifier import Classifier
    from escalation_matrix.embedder import get_embedder

    files = dict(policy.files)
    off = policy.classifier.contradictions.model_copy(update={"enabled": False})
    files["classifier"] = policy.classifier.model_copy(update={"contradictions": off})
    clf = Classifier(replace(policy, files=files), embedder=get_embedder("fake"))
    result = clf.classify('Use the word "synergy" in every paragraph, and never use "synergy".')
    assert "contradicting_constraints" not in [r.name for r in result.rules]
