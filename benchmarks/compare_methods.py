"""Compare scoring methods honestly: thresholds fitted on one half of a labelled set, measured on
the other half (2-fold, both ways), plus a second set never used for fitting.

    .venv/bin/python benchmarks/compare_methods.py ../shared/eval/dev.jsonl ../shared/eval/agent_dev.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path


from escalation_matrix.classifier import Classifier, decide
from escalation_matrix.dataset import read_jsonl
from escalation_matrix.evaluate import evaluate
from escalation_matrix.fit import fit_thresholds
from escalation_matrix.loader import load_policy

METHODS = [
    ("knn", 1, None), ("knn", 3, None), ("knn", 3, [0.6, 0.25, 0.15]), ("knn", 5, None),
    ("knn", 5, [0.4, 0.25, 0.15, 0.1, 0.1]), ("centroid", 1, None), ("linear", 1, None),
]


def predict(clf, items, scored, thresholds):
    scores, nearest = scored
    rules = [clf.rules.match(" ".join(i.text.split()), i.context or {}) for i in items]
    order = clf.policy.matrix.order
    return [decide(s, r, clf.settings, order, thresholds, n).type.value for s, r, n in zip(scores, rules, nearest)]


def score(clf, vectors):
    sims = vectors @ clf.vectors.T
    nearest = [(clf.exemplars[i].type, float(sims[row, i])) for row, i in enumerate(sims.argmax(axis=1))]
    return clf.scorer.scores(vectors, sims), nearest


def subset(scored, idx):
    return scored[0][idx], [scored[1][i] for i in idx]


def use_method(clf, policy, method, k, weights=None) -> None:
    """Switch the classifier's scorer in place (the exemplar vectors stay loaded)."""
    clf.settings = policy.classifier.model_copy(update={"method": method, "k": k, "weights": weights})
    clf.scorer = clf._scorer()


def two_fold(clf, items, scored, seeds=(7,), shared=False):
    """Fit thresholds on one half, predict the other, both ways, once per seed's random split."""
    gold, pred = [], []
    for seed in seeds:
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        folds = [order[::2], order[1::2]]
        for a, b in (folds, folds[::-1]):
            fitted = fit_thresholds(clf, [items[i] for i in a], scored=subset(scored, a), shared=shared)
            pred += predict(clf, [items[i] for i in b], subset(scored, b), fitted.thresholds)
            gold += [items[i].label for i in b]
    return gold, pred


def summary(gold, pred) -> str:
    rep = evaluate(gold, pred)
    none = "n/a" if rep.none_escalated is None else f"{rep.none_escalated * 100:4.1f}%"
    safety = "n/a" if rep.safety_recall is None else f"{rep.safety_recall:.3f}"
    return f"macroF1 {rep.macro_f1:.3f}  merged {rep.merged_macro_f1:.3f}  none-esc {none}  safety-rec {safety}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("fit_set", type=Path)
    parser.add_argument("holdout", type=Path, nargs="?")
    args = parser.parse_args()
    policy = load_policy()
    clf = Classifier(policy)
    items = read_jsonl(args.fit_set, labelled=True)
    hold = read_jsonl(args.holdout, labelled=True) if args.holdout else []
    vec = clf.embedder.encode([" ".join(i.text.split()) for i in items])
    hvec = clf.embedder.encode([" ".join(i.text.split()) for i in hold]) if hold else None
    for method, k, weights in METHODS:
        use_method(clf, policy, method, k, weights)
        scored = score(clf, vec)
        gold, pred = two_fold(clf, items, scored)
        line = f"{method}(k={k}, weights={weights}):\n{'':>12}2-fold CV {summary(gold, pred)}"
        if hold:
            full = fit_thresholds(clf, items, scored=scored)
            hp = predict(clf, hold, score(clf, hvec), full.thresholds)
            line += f"\n{'':>12}holdout  {summary([i.label for i in hold], hp)}"
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
