"""The lexical half of same-issue detection (no model) and the labelled pairs it is measured on.
The figures themselves come from benchmarks/bench_same_issue.py with the real model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from escalation_matrix.sameissue import agree, conflict, expand_abbreviations, same_issue, signature

PAIRS = Path(__file__).parent / "data" / "same_issue_pairs.jsonl"
HOLDOUT = Path(__file__).parent / "data" / "same_issue_pairs_holdout.jsonl"


@pytest.mark.parametrize("a, b, why", [
    ("Delete customer records older than 2019.", "Delete customer records older than 2022.", "numbers"),
    ("Transfer 5,000 dollars to the supplier.", "Transfer 50,000 dollars to the supplier.", "numbers"),
    ("Restart web-3 now.", "Restart db-1 now.", "numbers"),
    ("Send the contract to Acme.", "Send the contract to Globex.", "names"),
    ("Translate the guide into Spanish.", "Translate the guide into German.", "country or language"),
    ("Delete the test users from production.", "Delete the test users from staging.", "environment"),
    ("Fix the login bug on Android.", "Fix the login bug on iOS.", "platform"),
    ("Plan the trip for April.", "Plan the trip for November.", "month"),
    ("Archive the empty channels.", "Delete the empty channels.", "actions"),
    ("Export the customer list.", "Import the customer list.", "actions"),
    ("Give the intern access to the finance folder.", "Remove the intern's access to the finance folder.", "actions"),
    ("Should I keep the old API endpoints working?", "Should I document the new API endpoints?", "age"),
])
def test_a_different_value_of_the_same_kind_tells_two_issues_apart(a, b, why):
    assert why in (conflict(a, b) or "")


@pytest.mark.parametrize("a, b", [
    ("Delete the test users from the production database.", "Remove the test accounts from the prod DB."),
    ("Transfer 5,000 dollars to the supplier.", "Wire $5000 to the supplier."),
    ("Order 200 mugs.", "Buy two hundred mugs."),
    ("Push the release to production tonight.", "Deploy the new release to prod this evening."),
    ("Should I use British or American spelling?", "Do you prefer UK or US spelling?"),
    ("May I reboot the server now?", "Can I restart the server now?"),
    ("Write a poem for my mother's 70th birthday.", "Compose a poem for Mum turning 70."),
])
def test_rewordings_keep_their_values(a, b):
    assert conflict(a, b) is None


def test_giving_someone_access_is_granting_it():
    assert conflict("Give the contractor read access to the repo.",
                    "Grant read permission on the repository to the contractor.") is None


@pytest.mark.parametrize("a, b, agreeing", [
    ("Delete all customer records older than 2019 from the production database",
     "Purge customers from before 2019 in production", True),  # same year, environment and action
    ("Order 200 branded mugs for the conference.", "Buy two hundred mugs with our logo for the conference.", True),
    ("Delete all customer records older than 2019.", "Export all customer records older than 2019.", False),
    ("Clean up the shared drive.", "Tidy the shared drive.", False),  # no specific value named
])
def test_agreement_needs_a_shared_value_and_a_shared_kind_of_action(a, b, agreeing):
    assert agree(a, b) is agreeing


def test_numbers_are_read_in_any_common_spelling():
    assert signature("Wire $5,000 on the 3rd").numbers == {"5000", "3"}
    assert signature("Buy two hundred mugs").numbers == {"200"}


def test_same_issue_needs_both_signals():
    v = np.array([1.0, 0.0], dtype=np.float32)
    w = np.array([0.6, 0.8], dtype=np.float32)
    assert same_issue("Delete the old rows.", v, "Remove the old rows.", v, 0.8)
    assert not same_issue("Delete the old rows.", v, "Remove the old rows.", w, 0.8)  # cosine 0.6
    assert not same_issue("Delete rows before 2019.", v, "Delete rows before 2020.", v, 0.8)  # lexical veto
    assert not same_issue("a", v, "b", np.zeros(3, dtype=np.float32), 0.0)  # another model's vector


def test_sentences_that_agree_need_only_the_lower_cosine():
    v = np.array([1.0, 0.0], dtype=np.float32)
    w = np.array([0.72, np.sqrt(1 - 0.72 ** 2)], dtype=np.float32)  # cosine 0.72
    a, b = "Delete the records older than 2019 in production.", "Purge records from before 2019 in production."
    assert same_issue(a, v, b, w, 0.8, 0.7)
    assert not same_issue(a, v, b, w, 0.8)  # without the lower threshold
    assert not same_issue(a, v, "Purge records from before 2020 in production.", w, 0.8, 0.7)  # the veto still holds
    assert not same_issue("Clean up the drive.", v, "Tidy the drive.", w, 0.8, 0.7)  # no shared value


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path, least", [(PAIRS, 150), (HOLDOUT, 100)])
def test_the_labelled_sets_have_enough_pairs_of_each_kind(path, least):
    rows = _rows(path)
    kinds = Counter(r["kind"] for r in rows)
    assert len(rows) >= least
    assert set(kinds) == {"reworded", "shared_words", "different_task"}
    assert all(kinds[k] >= 25 for k in kinds)
    assert all(r["same"] == (r["kind"] == "reworded") for r in rows)
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows)  # no pair twice
    assert all(r["a"] != r["b"] for r in rows)


def test_the_holdout_shares_no_pair_with_the_fitted_set():
    fitted = {frozenset((r["a"], r["b"])) for r in _rows(PAIRS)}
    assert not any(frozenset((r["a"], r["b"])) in fitted for r in _rows(HOLDOUT))


def test_common_abbreviations_are_written_out_before_comparing():
    assert expand_abbreviations("Remove the test accounts from the prod DB.") == \
        "Remove the test accounts from the production database."
    assert expand_abbreviations("Turn off 2FA on the VMs in the repo.") == \
        "Turn off two-factor authentication on the virtual machines in the repository."
    assert expand_abbreviations("Produce a debrief for the product team.") == "Produce a debrief for the product team."


def test_the_guard_compares_requests_with_abbreviations_written_out(fake_classifier):
    _, vectors = fake_classifier.classify_encoded(["Delete the users from the prod DB", "Delete the users from the "
                                                   "production database", "Delete the users from the staging DB"])
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)
    assert fake_classifier.similarity("the prod DB", "the production database") == pytest.approx(1.0, abs=1e-5)
