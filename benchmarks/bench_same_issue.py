"""Same-issue detection on a labelled set of request/question pairs, with the real model.

    .venv/bin/python benchmarks/bench_same_issue.py [--pairs tests/data/same_issue_pairs.jsonl]
                                                    [--min-precision 0.97] [--splits 5]

Each pair is "reworded" (the same issue: same = true), "shared_words" (a different issue that
shares most words) or "different_task". The detector (escalation_matrix.sameissue) calls a pair the
same issue when the embedding cosine reaches a threshold and the lexical check finds no difference
(numbers, names, values of one group, kinds of action). The script:

1. fits the threshold on the whole set: the lowest cosine whose precision is at least
   --min-precision (the highest recall that keeps precision), and prints precision and recall there;
2. prints precision and recall at the threshold conversation.yaml ships;
3. prints 2-fold figures (fit on one half, measure on the other) over --splits random splits, an
   honest estimate for unseen pairs;
4. prints the cosine alone (no lexical check) at its own fitted threshold, for comparison.
With --scorer tokens the cosine of the pooled sentence vectors is replaced by a token-alignment
score (each word vector matched to its most similar one in the other text, F1 of the two
directions, as BERTScore does), an alternative tried for recall; --scorer both prints the two.
Targets: precision >= 0.97, recall >= 0.90."""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from escalation_matrix.embedder import get_embedder  # noqa: E402
from escalation_matrix.loader import load_policy  # noqa: E402
from escalation_matrix.sameissue import conflict  # noqa: E402


def measure(rows: list[dict], threshold: float, lexical: bool = True) -> tuple[float, float, Counter]:
    outcome: Counter = Counter()
    for r in rows:
        said = r["cos"] >= threshold and not (lexical and r["conflict"])
        outcome[("tp" if r["same"] else "fp") if said else ("fn" if r["same"] else "tn")] += 1
    precision = outcome["tp"] / max(1, outcome["tp"] + outcome["fp"]) if outcome["tp"] + outcome["fp"] else 1.0
    recall = outcome["tp"] / max(1, outcome["tp"] + outcome["fn"])
    return precision, recall, outcome


def fit(rows: list[dict], min_precision: float, lexical: bool = True) -> float:
    """The lowest threshold (most recall) whose precision reaches ``min_precision``."""
    for threshold in np.round(np.arange(0.40, 0.99, 0.01), 2):
        if measure(rows, float(threshold), lexical)[0] >= min_precision:
            return float(threshold)
    return 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default=str(ROOT / "tests" / "data" / "same_issue_pairs.jsonl"))
    parser.add_argument("--min-precision", type=float, default=0.97)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--scorer", choices=["cosine", "tokens", "both"], default="cosine",
                        help="pooled-vector cosine (what the server uses), token alignment, or both")
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.pairs).read_text().splitlines() if line.strip()]
    policy = load_policy()
    embedder = get_embedder(policy.classifier.model, policy.classifier.backend)
    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    vectors = dict(zip(texts, embedder.encode(texts)))
    tokens = token_vectors(embedder, texts) if args.scorer != "cosine" else {}
    for r in rows:
        r["pooled"] = float(vectors[r["a"]] @ vectors[r["b"]])
        if tokens:
            r["tokens"] = alignment(tokens[r["a"]], tokens[r["b"]])
        r["conflict"] = conflict(r["a"], r["b"])
    for scorer in (["cosine", "tokens"] if args.scorer == "both" else [args.scorer]):
        for r in rows:
            r["cos"] = r["pooled" if scorer == "cosine" else "tokens"]
        print(f"== scorer: {scorer}")
        report(rows, policy, args)


def token_vectors(embedder, texts: list[str]) -> dict[str, np.ndarray]:
    """Unit word-piece vectors of each text from the sentence encoder (no [CLS]/[SEP])."""
    model = embedder._model  # the SentenceTransformer
    found = {}
    for text, matrix in zip(texts, model.encode(texts, output_value="token_embeddings", show_progress_bar=False)):
        m = np.asarray(matrix)[1:-1]
        found[text] = m / np.linalg.norm(m, axis=1, keepdims=True)
    return found


def alignment(a: np.ndarray, b: np.ndarray) -> float:
    sims = a @ b.T
    precision, recall = sims.max(1).mean(), sims.max(0).mean()
    return float(2 * precision * recall / (precision + recall))


def report(rows: list[dict], policy, args) -> None:
    kinds = Counter(r["kind"] for r in rows)
    print(f"pairs: {len(rows)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); "
          f"model {policy.classifier.model}; target precision >= 0.97, recall >= 0.90")

    def line(label: str, threshold: float, subset: list[dict], lexical: bool = True) -> None:
        p, r, o = measure(subset, threshold, lexical)
        print(f"{label:<44} threshold {threshold:.2f}  precision {p:.3f}  recall {r:.3f}  "
              f"(tp {o['tp']}, fp {o['fp']}, fn {o['fn']}, tn {o['tn']})")

    fitted = fit(rows, args.min_precision)
    line("cosine + lexical check, fitted on all", fitted, rows)
    line("cosine + lexical check, shipped", policy.conversation.same_issue_similarity, rows)
    line("cosine alone, fitted on all", fit(rows, args.min_precision, lexical=False), rows, lexical=False)
    for kind in sorted(kinds):
        wrong = [r for r in rows if r["kind"] == kind and
                 (r["cos"] >= fitted and not r["conflict"]) != r["same"]]
        print(f"  {kind:<16} wrong at {fitted:.2f}: {len(wrong)} of {kinds[kind]}")
    precisions, recalls = [], []
    for seed in range(args.splits):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        halves = shuffled[::2], shuffled[1::2]
        for train, test in (halves, halves[::-1]):
            p, r, _ = measure(test, fit(train, args.min_precision))
            precisions.append(p)
            recalls.append(r)
    print(f"2-fold over {args.splits} splits (fit on one half, measure the other): "
          f"precision median {np.median(precisions):.3f} (min {min(precisions):.3f}), "
          f"recall median {np.median(recalls):.3f} (min {min(recalls):.3f})")
    hits = [("precision", np.median(precisions) >= 0.97), ("recall", np.median(recalls) >= 0.90)]
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in hits))


if __name__ == "__main__":
    main()
