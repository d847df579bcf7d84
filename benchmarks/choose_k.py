"""Choose k for the kNN scorer on a labelled set alone: thresholds fitted on one half, measured on
the other, both ways, over several random splits. Prints macro-F1, the share of proceed items
escalated and safety recall per k, and the measure ``fit`` optimises (macro-F1 less ten times the
share of proceed items escalated above 5 %).

    .venv/bin/python benchmarks/choose_k.py ../shared/eval/dev.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from compare_methods import predict, score, subset, summary

from escalation_matrix.classifier import Classifier
from escalation_matrix.dataset import read_jsonl
from escalation_matrix.evaluate import evaluate
from escalation_matrix.fit import MAX_NONE_ESCALATED, fit_thresholds
from escalation_matrix.loader import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labelled", type=Path)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13, 17, 23])
    args = parser.parse_args()
    policy = load_policy()
    clf = Classifier(policy)
    items = read_jsonl(args.labelled, labelled=True)
    vectors = clf.embedder.encode([" ".join(i.text.split()) for i in items])
    for k in args.k:
        clf.settings = policy.classifier.model_copy(update={"method": "knn", "k": k, "weights": None})
        clf.scorer = clf._scorer()
        scored = score(clf, vectors)
        gold, pred = [], []
        for seed in args.seeds:
            order = list(range(len(items)))
            random.Random(seed).shuffle(order)
            folds = [order[::2], order[1::2]]
            for a, b in (folds, folds[::-1]):
                fitted = fit_thresholds(clf, [items[i] for i in a], scored=subset(scored, a))
                pred += predict(clf, [items[i] for i in b], subset(scored, b), fitted.thresholds)
                gold += [items[i].label for i in b]
        rep = evaluate(gold, pred)
        measure = rep.macro_f1 - max(0.0, (rep.none_escalated or 0.0) - MAX_NONE_ESCALATED) * 10
        print(f"k={k} {len(args.seeds)}-split 2-fold {summary(gold, pred)}  measure {measure:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
