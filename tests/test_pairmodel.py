"""The shipped same-issue pair model (trained/same_issue/) with the real encoder: it loads offline,
serves the same scores on ONNX Runtime as on torch, and the conversation rules use it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from escalation_matrix.classifier import load_pair_model
from escalation_matrix.embedder import _resolve_model
from escalation_matrix.errors import PolicyError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.pairmodel import LABELS, PairModel
from escalation_matrix.paths import default_dir
from escalation_matrix.store import Store

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]
FOLDER = default_dir("trained") / "same_issue"
PAIRS = [
    ("Grant the intern edit rights on the marketing drive.", "Grant the intern view rights on the marketing drive."),
    ("Delete all customer records older than 2019 from the production database",
     "Purge customers from before 2019 in production"),
    ("Which hotel should I book for the offsite?", "Ship the March invoices to accounting."),
]


@pytest.fixture(scope="module")
def pair():
    return PairModel(FOLDER, _resolve_model("bundled"), "onnx")


def test_the_shipped_pair_model_is_small_and_names_its_threshold(pair):
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    assert manifest["labels"] == LABELS and pair.threshold == manifest["decision"]["same"]
    assert 0.5 < pair.threshold < 1
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 5 * 2**20


def test_the_classifier_settings_load_it(policy):
    loaded = load_pair_model(policy.classifier)
    assert loaded is not None and loaded.threshold == json.loads((FOLDER / "manifest.json").read_text())["decision"]["same"]
    assert load_pair_model(policy.classifier) is loaded  # one per process


def test_it_runs_in_fp32_when_the_classifier_runs_in_int8(policy):
    """Its threshold sits where int8 rounding changes decisions (8 of the 660 pairs of same_issue_train.jsonl)."""
    int8 = policy.classifier.model_copy(update={"precision": "int8"})
    assert load_pair_model(int8).model.precision == "fp32"


def test_scores_do_not_depend_on_the_order_of_the_two_calls(pair):
    forward = pair.scores(PAIRS)
    backward = pair.scores([(b, a) for a, b in PAIRS])
    assert np.allclose(forward, backward, atol=1e-6)
    # two different tasks: the model's "different" (the shipped model scores them 0.12; its
    # threshold for one issue is 0.995)
    assert forward[2] < 0.5 and forward[2] < forward[1]


def test_a_pair_that_names_different_years_is_never_one_issue(pair):
    older = "Delete all customer records older than {} from the production database"
    assert pair.scores([(older.format(2019), older.format(2022))])[0] == 0.0
    assert pair.scores([(older.format(2019), "Purge customers from before 2019 in production")])[0] >= pair.threshold


def test_onnx_and_torch_serve_the_same_scores(pair):
    torch_pair = PairModel(FOLDER, _resolve_model("bundled"), "torch")
    assert np.allclose(pair.scores(PAIRS), torch_pair.scores(PAIRS), atol=2e-3)


def test_a_changed_weight_file_is_refused(tmp_path):
    copy = tmp_path / "same_issue"
    shutil.copytree(FOLDER, copy)
    head = copy / "head.safetensors"
    head.write_bytes(head.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(PolicyError, match="does not match manifest.json"):
        PairModel(copy, _resolve_model("bundled"), "onnx")


def test_the_classifier_model_is_not_a_pair_model():
    with pytest.raises(PolicyError, match="same-issue pair model has labels"):
        PairModel(default_dir("trained"), _resolve_model("bundled"), "onnx")


def test_an_answer_is_not_handed_to_a_different_issue_worded_alike(policy, classifier, tmp_path):
    """An answered issue comes back only when the pair model says it is the same issue (the cosine
    detector takes these two for one and would hand over the edit-rights answer)."""
    guard = ConversationGuard(policy, classifier, Store(tmp_path / "p.db"))
    edit, view = PAIRS[0]
    first = guard.escalate("c", edit, type="compliance")
    guard.respond(first.escalation_id, "Yes, edit rights are fine")
    second = guard.escalate("c", view, type="compliance")
    assert second.answer is None and second.escalation_id != first.escalation_id
    assert guard.store.count("escalations") == 2


def test_a_reworded_question_gets_the_earlier_answer(policy, classifier, tmp_path):
    guard = ConversationGuard(policy, classifier, Store(tmp_path / "q.db"))
    asked, reworded = "Which hotel should I book for the offsite?", "Where do you want me to stay for the offsite?"
    first = guard.escalate("trip", "Plan the team offsite in Lisbon.", question=asked, type="decision")
    guard.respond(first.escalation_id, "The one by the river")
    again = guard.clarify("trip", "Plan the team offsite in Lisbon.", reworded)
    assert (again.action.value, again.answer, again.escalation_id) == ("proceed", "The one by the river",
                                                                      first.escalation_id)
    assert again.matched_request == asked


def test_an_open_escalation_is_matched_by_the_pair_model_or_the_cosine(policy, classifier, tmp_path):
    """Escalate once: a repeat only returns the open escalation (shown with matched_request), so
    what either detector takes for the same issue counts."""
    guard = ConversationGuard(policy, classifier, Store(tmp_path / "o.db"))
    first = guard.escalate("d", "Should I give the new designer admin rights on Figma?", type="compliance")
    again = guard.escalate("d", "Can the new designer be a Figma admin?", type="compliance")
    assert again.repeated and again.escalation_id == first.escalation_id
    assert again.matched_request == "Should I give the new designer admin rights on Figma?"


@pytest.mark.slow
def test_the_benchmark_prints_the_pair_model_figures():
    """The shipped detectors on the holdout (never trained or fitted on): the pair model alone
    (re-ask) and the pair model or the cosine detector (repeat). Bounds a little under the
    measured figures (0.917 / 0.660 and 0.804 / 0.900), to catch a broken model or threshold."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_same_issue.py"), "--splits", "1"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "the shipped detectors: the same-issue pair model" in out
    reask, repeat = [line for line in out.splitlines() if line.strip().startswith("holdout:")][:2]

    def figures(line: str) -> tuple[float, float]:
        return float(line.split("precision ")[1].split()[0]), float(line.split("recall ")[1].split()[0])

    assert figures(reask)[0] >= 0.88 and figures(reask)[1] >= 0.6, reask
    assert figures(repeat)[0] >= 0.75 and figures(repeat)[1] >= 0.85, repeat


def test_a_retrained_pair_model_is_served_from_its_folder(tmp_path):
    """pairmodel.train writes what PairModel serves (two steps: the plumbing, not the accuracy)."""
    from escalation_matrix import finetune, pairmodel

    pairs = [pairmodel.Pair(a, b, same) for (a, b), same in zip(PAIRS, (False, True, False))]
    config = pairmodel.default_config()
    config.max_steps = 2
    weights = pairmodel.train(pairs, _resolve_model("bundled"), config)
    finetune.save(weights, tmp_path / "same_issue", {"decision": {"same": 0.75}})
    served = PairModel(tmp_path / "same_issue", _resolve_model("bundled"), "onnx", cache=tmp_path / "cache")
    scores = served.scores(PAIRS)
    assert served.threshold == 0.75 and scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
