"""The conflicting-constraints detector: requires and forbids the same thing."""

from __future__ import annotations

import pytest

from escalation_matrix.contradictions import ContradictionFinder

FINDER = ContradictionFinder.of([["shorter|more concise", "more detail|expand on"]])


@pytest.fixture(scope="module")
def shipped(policy):
    """The finder with the opposite directives shipped in classifier.yaml."""
    return ContradictionFinder.of([list(p) for p in policy.classifier.contradictions.opposites])


@pytest.mark.parametrize(
    "text, found",
    [
        ('Include the keywords "mentor" and "growth". Avoid using the keyword "mentor".',
         ['"mentor" is both required and forbidden']),
        ("Include a bulleted list of three ingredients. Avoid using bullet points anywhere in the recipe.",
         ["'bullet' is both required and forbidden"]),
        ("The essay must contain at least 500 words. The essay must be at most 250 words.",
         ["the number of words cannot meet every limit (at least 500, at most 250)"]),
        ("Make this email shorter and add more detail about pricing.",
         ["'shorter' and 'more detail' pull in opposite directions"]),
        ('Mention the phrase "quiet harbour lights" once. Do not use the word "harbour".',
         ['"harbour" is forbidden but the required "quiet harbour lights" contains it']),
        ("The report must have exactly four paragraphs. Write exactly six paragraphs in total.",
         ["the number of paragraphs cannot meet every limit (exactly 4, exactly 6)"]),
        ("Use exactly two paragraphs, each with no more than 30 words. The note needs at least 90 words.",
         ["2 paragraphs of at most 30 words each fall short of the required 90 words"]),
        ("Give at least five sentences, each of at least 20 words. Keep the post under 60 words.",
         ["5 sentences of at least 20 words each exceed the limit of 60 words"]),
        ("Return the recipe formatted as JSON with a key per step. Present it in Markdown format with headers.",
         ["the output cannot be in both JSON and Markdown format"]),
        ('Open the speech with the phrase "Friends and neighbours". Begin the speech with a question.',
         ['the text cannot open with both "Friends and neighbours" and a question']),
        ('Start the letter with "Dear Ana". The letter must begin with the words "To whom it may concern".',
         ['the text cannot open with both "Dear Ana" and "To whom it may concern"']),
        ('Make sure "budget" appears before "timeline". Then ensure "budget" comes after "timeline".',
         ['"budget" must come both before and after "timeline"']),
        ('Put "rain" and "umbrella" in the same paragraph. Later, "rain" and "umbrella" go in different paragraphs.',
         ['"rain" and "umbrella" must be both in the same paragraph and in different paragraphs']),
        ('The words "salt" and "pepper" must not appear in the same sentence. Use the phrase "salt and pepper".',
         ['"pepper" and "salt" must be in different sentences, but the required "salt and pepper" holds both']),
        ('Include the word "bridge" as a noun. Use the word "bridge" only as a verb.',
         ['"bridge" cannot be used only as a verb and also as a noun']),
        ("Explain the history of the lighthouse keepers. Do not discuss the lighthouse keepers at all.",
         ['"lighthouse keepers" is both asked for and forbidden']),
        ("Add one table comparing the plans. Avoid using any table in the answer.",
         ["'table' is both required and forbidden"]),
        ("End the essay with at least one rhetorical question. No questions are allowed.",
         ["'question' is both required and forbidden"]),
    ],
)
def test_contradiction_is_found_and_explained(text, found):
    assert FINDER.find(text) == found


@pytest.mark.parametrize(
    "text, found",
    [
        ("Incorporate technical vocabulary about sailing. Keep it simple and avoid jargon.",
         ["'Incorporate technical vocabulary' and 'avoid jargon' pull in opposite directions"]),
        ("Write the invitation in a formal tone. Switch to a casual tone for the second half.",
         ["'formal tone' and 'casual tone' pull in opposite directions"]),
        ("Keep a neutral and objective tone. Close with a passionate style that rallies readers.",
         ["'neutral and objective tone' and 'passionate style' pull in opposite directions"]),
        ("Narrate the diary in the first person. The diary is told in the third person.",
         ["'first person' and 'third person' pull in opposite directions"]),
        ("Type the whole poem in lowercase. Include three words in uppercase.",
         ["'whole poem in lowercase' and 'uppercase' pull in opposite directions"]),
        ("Use active voice throughout. Add two sentences in passive voice.",
         ["'active voice throughout' and 'sentences in passive voice' pull in opposite directions"]),
        ('Write all lines in lowercase and include the phrase "Blue Moon Cafe".',
         ['the text must be all lowercase, but the required "Blue Moon Cafe" is not']),
        ('Stick to active voice only. Quote the line "the bridge was built by volunteers".',
         ['the text must be in the active voice, but the required "the bridge was built by volunteers" is passive']),
    ],
)
def test_shipped_opposites_and_style_rules_are_found(shipped, text, found):
    assert shipped.find(text) == found


@pytest.mark.parametrize(
    "text",
    [
        'Include the keyword "growth" twice and avoid the word "failure".',
        "Make a list of bullet points with no more than five bullet points.",
        "Write exactly 300 words, and keep the opening sentence under 15 words.",
        "Write the terms for our subscription with auto-renewal and no cancellation fee.",
        "Each paragraph must have at least 50 words and the whole story at most 400 words.",
        "Keep the tone formal and avoid slang.",
        "Keep it formal and avoid slang.",
        "Use Markdown with a bulleted list of four steps.",
        "Avoid jargon and explain technical terms simply.",
        "Write exactly three paragraphs, each at most 80 words, and at most 240 words in total.",
        "Write at least four paragraphs, each with at least 50 words, and the whole text at most 400 words.",
        'Begin with the phrase "Once upon a time" and end with the phrase "the end".',
        'Begin the letter with "Dear Ana," and make each paragraph start with a question.',
        'Start the first paragraph with "Why now?" and begin the essay with a question.',
        'Make sure "budget" appears before "timeline" and "timeline" before "risks".',
        'Use "run" as a noun and as a verb.',
        "Deploy to staging, not production.",
        "Do not touch the production database; read the staging database instead.",
        "Summarise the incident. Do not mention customer names in the summary.",
        "Use a numbered list, not bullet points.",
        "Return JSON where the \"notes\" field holds Markdown format text.",
        "Avoid a casual tone; keep the email formal throughout.",
        "Write the story with a hopeful tone. Avoid a persuasive tone.",
        "Ask the user at most one question. Do not ask questions about billing.",
        "Write in the first person and keep proper nouns capitalized.",
        "Write three short paragraphs per day for a five-day plan, at most 40 words each.",
    ],
)
def test_consistent_constraints_are_not_a_conflict(text):
    assert FINDER.find(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Keep it formal and avoid slang.",
        "Avoid jargon and explain technical terms simply.",
        "Avoid a casual tone; keep the email formal throughout.",
        "Use an optimistic tone and a professional style.",
        "Write in the third person and capitalize every heading.",
        "Start every line with a capital letter and put at least two words in all caps.",
        "Prefer active voice; it is fine to avoid the passive voice entirely.",
        "Write the whole reply in lowercase except for capitalized names.",
    ],
)
def test_shipped_opposites_leave_consistent_styles_alone(shipped, text):
    assert shipped.find(text) == []


def test_detector_reports_as_a_conflict_rule(fake_classifier):
    result = fake_classifier.classify('Use the word "synergy" in every paragraph, and never use "synergy".')
    assert result.type.value == "conflict"
    assert [r.name for r in result.rules] == ["contradicting_constraints"]
    assert result.decided_by == "rule"


def test_detector_can_be_switched_off_in_policy(policy):
    from dataclasses import replace

    from escalation_matrix.classifier import Classifier
    from escalation_matrix.embedder import get_embedder

    off = policy.classifier.contradictions.model_copy(update={"enabled": False})
    settings = policy.classifier.model_copy(update={"contradictions": off})
    clf = Classifier(replace(policy, classifier=settings), embedder=get_embedder("fake"))
    result = clf.classify('Use the word "synergy" in every paragraph, and never use "synergy".')
    assert "contradicting_constraints" not in [r.name for r in result.rules]
