"""How the conversation rules use a same-issue pair model (any scorer with ``threshold`` and
``scores``): pure logic, no model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.matching import PAIR_CANDIDATES, Issue, closest
from escalation_matrix.pairmodel import SEPARATOR, Pair, different_years, pair_text, unrelated
from escalation_matrix.store import Store


class Scripted:
    """Scores pairs from a table (unordered), 0 for any other pair; records what it was asked."""

    def __init__(self, table: dict[frozenset[str], float], threshold: float = 0.9):
        self.table, self.threshold, self.asked = table, threshold, []

    def scores(self, pairs):
        self.asked.append(list(pairs))
        return np.array([self.table.get(frozenset(p), 0.0) for p in pairs], np.float32)


def row(rid: str, request: str, question: str | None = None) -> dict:
    vector = np.ones(4, np.float32) / 2
    return {"id": rid, "request": request, "agent_question": question, "question": question,
            "request_vector": vector.tobytes(), "question_vector": vector.tobytes()}


def issue(request: str, question: str | None = None) -> Issue:
    vector = np.ones(4, np.float32) / 2
    return Issue(request, vector, question, vector if question else None)


def test_the_pair_model_decides_instead_of_the_cosine():
    rows = [row("a", "Delete the 2019 customers"), row("b", "Archive the 2019 customers")]
    scorer = Scripted({frozenset({"Purge customers from 2019", "Delete the 2019 customers"}): 0.97,
                       frozenset({"Purge customers from 2019", "Archive the 2019 customers"}): 0.40})
    # both stored vectors equal the new one: the cosine alone would take either
    assert closest(rows, issue("Purge customers from 2019"), 0.8, pair=scorer)["id"] == "a"
    assert len(scorer.asked) == 1 and len(scorer.asked[0]) == 2  # one pass over every stored issue


def test_below_the_threshold_nothing_matches_and_the_likeliest_of_several_wins():
    rows = [row("a", "first"), row("b", "second")]
    assert closest(rows, issue("new"), 0.8, pair=Scripted({frozenset({"new", "first"}): 0.5})) is None
    both = Scripted({frozenset({"new", "first"}): 0.91, frozenset({"new", "second"}): 0.99})
    assert closest(rows, issue("new"), 0.8, pair=both)["id"] == "b"


def test_the_same_words_are_always_the_same_issue():
    rows = [row("a", "Drop the staging table.")]
    scorer = Scripted({})
    assert closest(rows, issue("drop the  staging table"), 0.8, pair=scorer)["id"] == "a"
    assert scorer.asked == []  # no model pass for the same words


def test_questions_are_compared_when_both_calls_asked_one():
    rows = [row("a", "Book travel", "Which hotel should I book?")]
    scorer = Scripted({frozenset({"Where do you want me to stay?", "Which hotel should I book?"}): 0.95})
    assert closest(rows, issue("Book travel", "Where do you want me to stay?"), 0.8, pair=scorer)["id"] == "a"
    assert scorer.asked == [[("Where do you want me to stay?", "Which hotel should I book?")]]


def test_a_call_the_agent_marks_as_a_new_issue_matches_only_the_same_words():
    rows = [row("a", "Delete the 2019 customers")]
    scorer = Scripted({frozenset({"Purge customers from 2019", "Delete the 2019 customers"}): 0.99})
    assert closest(rows, issue("Purge customers from 2019"), 0.8, exact=True, pair=scorer) is None
    assert scorer.asked == []


def test_no_stored_issue_asks_the_model_nothing():
    scorer = Scripted({})
    assert closest([], issue("anything"), 0.8, pair=scorer) is None and scorer.asked == []


def test_the_model_reads_both_texts_with_abbreviations_written_out():
    assert pair_text("Drop the prod DB", "drop it") == f"Drop the production database{SEPARATOR}drop it"


@pytest.mark.parametrize("choice, trained, used", [("pair", True, True), ("cosine", True, False),
                                                   ("pair", False, False)])
def test_conversation_yaml_chooses_the_pair_model_or_the_cosine(policy, fake_classifier, tmp_path, monkeypatch,
                                                               choice, trained, used):
    """The pair model is used when chosen and the classifier runs on the trained model; on another
    encoder (here the fast test one) the cosine thresholds decide."""
    import escalation_matrix.guard as guard_module

    scorer = Scripted({})
    monkeypatch.setattr(guard_module, "load_pair_model", lambda settings: scorer)
    if trained:
        monkeypatch.setattr(guard_module, "is_probability_model", lambda embedder: True)
    chosen = dataclasses.replace(policy, conversation=policy.conversation.model_copy(
        update={"same_issue_model": choice}))
    guard = ConversationGuard(chosen, fake_classifier, Store(tmp_path / "g.db"))
    assert (guard._pair_model() is scorer) is used


def test_policy_check_reads_the_pair_model_folder(tmp_path, capsys):
    import shutil

    from escalation_matrix.cli.core import _check_pair_model
    from escalation_matrix.errors import PolicyError
    from escalation_matrix.paths import default_dir

    shipped = default_dir("trained") / "same_issue"
    _check_pair_model(shipped)
    assert "ok: the same-issue pair model in" in capsys.readouterr().out
    _check_pair_model(tmp_path / "missing")
    assert "no same-issue pair model in" in capsys.readouterr().err
    copy = tmp_path / "same_issue"
    shutil.copytree(shipped, copy)
    (copy / "adapter.safetensors").write_bytes(b"not the trained adapter")
    with pytest.raises(PolicyError, match="does not match manifest.json"):
        _check_pair_model(copy)
    with pytest.raises(PolicyError, match="same-issue pair model has labels"):
        _check_pair_model(default_dir("trained"))


@pytest.mark.parametrize(("a", "b", "different"), [
    ("Delete customer records older than 2019", "Delete customer records older than 2022", True),
    ("Delete customer records older than 2019", "Purge customers from before 2019", False),
    ("Move the 2022 invoice emails to Taxes", "File 2022's invoice emails under Taxes", False),
    ("Archive the 2019 and 2020 reports", "Archive the 2019 reports", True),
    ("Delete customer records older than 2019", "Delete old customer records", False),  # one side only
    ("Meet on 12/06/2021", "Meet in 2022", False),  # a date's year is not read as a year
    ("Pay $2019 to the supplier", "Pay the supplier in 2020", False),  # an amount
    ("Upgrade to version 2.2019", "Upgrade in 2020", False),  # a version
])
def test_calls_that_name_different_years_are_different_issues(a, b, different):
    assert different_years(a, b) is different


def test_unrelated_pairs_come_from_training_pairs_that_share_no_text():
    pairs = [Pair("a1", "a2", True), Pair("a2", "a3", False), Pair("b1", "b2", True), Pair("c1", "c2", False)]
    drawn = unrelated(pairs, 50, seed=3)
    groups = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b", "c1": "c", "c2": "c"}
    assert len(drawn) == 50 and all(not p.same and groups[p.a] != groups[p.b] for p in drawn)
    assert unrelated(pairs, 50, seed=3) == drawn  # seeded
    assert unrelated([Pair("a1", "a2", True)], 5) == []  # one group: nothing unrelated to draw


def test_the_pair_model_reads_only_the_stored_issues_closest_by_cosine():
    """A long conversation stores many issues: the model reads the PAIR_CANDIDATES closest by
    cosine, and a match among the others is not found by it (the cosine detector may still find it
    for an open escalation)."""
    def unit(angle: float) -> np.ndarray:
        return np.array([np.cos(angle), np.sin(angle), 0, 0], np.float32)

    def stored(rid: str, request: str, angle: float) -> dict:
        return {**row(rid, request), "request_vector": unit(angle).tobytes(), "question_vector": unit(angle).tobytes()}

    count = PAIR_CANDIDATES + 4
    rows = [stored(f"r{i}", f"Stored request {i}", 0.1 * i) for i in range(count)]
    new = Issue("The new call", unit(0.0))
    far, near = f"Stored request {count - 1}", f"Stored request {PAIR_CANDIDATES - 1}"
    model = Scripted({frozenset({"The new call", far}): 0.99, frozenset({"The new call", near}): 0.95})
    assert closest(rows, new, 0.8, pair=model)["id"] == f"r{PAIR_CANDIDATES - 1}"
    assert sorted(b for _, b in model.asked[0]) == sorted(f"Stored request {i}" for i in range(PAIR_CANDIDATES))
    shuffled = rows[::-1]  # the order stored does not matter, the cosine does
    assert closest(shuffled, new, 0.8, pair=model)["id"] == f"r{PAIR_CANDIDATES - 1}"
    assert closest(rows[:PAIR_CANDIDATES], new, 0.8, pair=Scripted({})) is None
