"""Choose k for the kNN scorer on a labelled set alone: thresholds fitted on one half, measured on
the other, both ways, over several random splits. Prints macro-F1, the share of proceed items
escalated and safety recall per k, and the measure ``fit`` optimises (macro-F1 less ten times the
share of proceed items escalated above 5 %, less twice any safety recall below 0.95).

    .venv/bin/python benchmarks/choose_k.py ../shared/eval/dev.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compare_methods import score, summary, two_fold, use_method

from escalation_matrix.classifier import Classifier
from escalation_matrix.dataset import read_jsonl
from escalation_matrix.evaluate import evaluate
from escalation_matrix.fit import fit_measure
from escalation_matrix.loader import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labelled", type=Path)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13, 17, 23])
    parser.add_argument("--shared", action="store_true", help="one threshold for every type but safety")
    args = parser.parse_args()
    policy = load_policy()
    clf = Classifier(policy)
    items = read_jsonl(args.labelled, labelled=True)
    vectors = clf.embedder.encode([" ".join(i.text.split()) for i in items])
    for k in args.k:
        use_method(clf, policy, "knn", k)
        gold, pred = two_fold(clf, items, score(clf, vectors), args.seeds, shared=args.shared)
        measure = fit_measure(evaluate(gold, pred))
        print(f"k={k} {len(args.seeds)}-split 2-fold {summary(gold, pred)}  measure {measure:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
