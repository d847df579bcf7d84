"""Same-issue detection on labelled sets of request/question pairs, with the real model.

    .venv/bin/python benchmarks/bench_same_issue.py [--pairs tests/data/same_issue_pairs.jsonl]
        [--holdout tests/data/same_issue_pairs_holdout.jsonl] [--min-precision 0.97] [--splits 5]

Each pair is "reworded" (the same issue: same = true), "shared_words" (a different issue that
shares most words) or "different_task". The detector (escalation_matrix.sameissue) calls a pair the
same issue when the lexical check finds no difference (numbers, names, values of one group, kinds
of action) and the embedding cosine reaches ``same_issue_similarity``, or the lower
``same_issue_similarity_agreeing`` when both sentences name the same specific value and the same
kind of action. Texts are embedded with common abbreviations written out, as the server does.
--pairs is the set the lexical rules and thresholds were fitted on; --holdout holds
pairs written afterwards and never used to fit anything. For each set the script prints:

1. the figures at the thresholds conversation.yaml ships (the headline for the holdout);
2. 2-fold figures (fit on one half, measure on the other) over --splits random splits, for one
   cosine alone and for the two thresholds;
3. the thresholds fitted on the whole set (the lowest that keep precision >= --min-precision);
and then the thresholds fitted on --pairs measured on --holdout. With --scorer tokens (torch
backend only) the cosine of the pooled sentence vectors is replaced by a token-alignment score
(each word vector matched to its most similar one in the other text, F1 of the two directions, as
BERTScore does), an alternative tried for recall; --scorer both prints the two.
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
from escalation_matrix.sameissue import agree, conflict, expand_abbreviations  # noqa: E402

GRID = [float(t) for t in np.round(np.arange(0.40, 0.99, 0.01), 2)]
Thresholds = tuple[float, float]  # (same_issue_similarity, same_issue_similarity_agreeing)


def measure(rows: list[dict], thresholds: Thresholds, lexical: bool = True) -> tuple[float, float, Counter]:
    plain, agreeing = thresholds
    outcome: Counter = Counter()
    for r in rows:
        said = (r["cos"] >= plain or (r["agree"] and r["cos"] >= agreeing)) and not (lexical and r["conflict"])
        outcome[("tp" if r["same"] else "fp") if said else ("fn" if r["same"] else "tn")] += 1
    precision = outcome["tp"] / (outcome["tp"] + outcome["fp"]) if outcome["tp"] + outcome["fp"] else 1.0
    recall = outcome["tp"] / max(1, outcome["tp"] + outcome["fn"])
    return precision, recall, outcome


def fit(rows: list[dict], min_precision: float, two: bool = True, lexical: bool = True) -> Thresholds:
    """The thresholds with the most recall whose precision reaches ``min_precision``: one cosine
    for all pairs, or (``two``) a plain cosine and a lower one for pairs that agree."""
    best: tuple[float, Thresholds] | None = None
    for plain in GRID:
        for agreeing in ([t for t in GRID if t <= plain] if two else [plain]):
            precision, recall, _ = measure(rows, (plain, agreeing), lexical)
            if precision >= min_precision and (best is None or recall > best[0]):
                best = (recall, (plain, agreeing))
    return best[1] if best else (0.99, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default=str(ROOT / "tests" / "data" / "same_issue_pairs.jsonl"))
    parser.add_argument("--holdout", default=str(ROOT / "tests" / "data" / "same_issue_pairs_holdout.jsonl"))
    parser.add_argument("--min-precision", type=float, default=0.97)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--scorer", choices=["cosine", "tokens", "both"], default="cosine",
                        help="pooled-vector cosine (what the server uses), token alignment, or both")
    args = parser.parse_args()
    sets = {name: [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            for name, path in (("fitted set", args.pairs), ("holdout", args.holdout)) if path}
    policy = load_policy()
    embedder = get_embedder(policy.classifier.model, policy.classifier.encoder)
    rows = [r for found in sets.values() for r in found]
    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    vectors = dict(zip(texts, embedder.encode([expand_abbreviations(t) for t in texts])))  # as the server does
    tokens = token_vectors(embedder, texts) if args.scorer != "cosine" else {}
    for r in rows:
        r["pooled"] = float(vectors[r["a"]] @ vectors[r["b"]])
        if tokens:
            r["tokens"] = alignment(tokens[r["a"]], tokens[r["b"]])
        r["conflict"] = conflict(r["a"], r["b"])
        r["agree"] = agree(r["a"], r["b"])
    shipped = (policy.conversation.same_issue_similarity, policy.conversation.same_issue_similarity_agreeing)
    print(f"model {policy.classifier.model}; target precision >= 0.97, recall >= 0.90; shipped thresholds "
          f"{shipped[0]:.2f} (cosine) and {shipped[1]:.2f} (cosine when values and action agree)")
    for scorer in (["cosine", "tokens"] if args.scorer == "both" else [args.scorer]):
        for r in rows:
            r["cos"] = r["pooled" if scorer == "cosine" else "tokens"]
        print(f"== scorer: {scorer}")
        for name, found in sets.items():
            report(name, found, shipped, args)
        if len(sets) == 2:
            fitted, holdout = sets["fitted set"], sets["holdout"]
            print("-- thresholds fitted on the fitted set, measured on the holdout")
            for label, two in (("one cosine", False), ("two thresholds", True)):
                line(label, fit(fitted, args.min_precision, two), holdout)


def line(label: str, thresholds: Thresholds, subset: list[dict], lexical: bool = True) -> None:
    p, r, o = measure(subset, thresholds, lexical)
    print(f"  {label:<42} thresholds {thresholds[0]:.2f}/{thresholds[1]:.2f}  precision {p:.3f}  recall {r:.3f}  "
          f"(tp {o['tp']}, fp {o['fp']}, fn {o['fn']}, tn {o['tn']})")


def token_vectors(embedder, texts: list[str]) -> dict[str, np.ndarray]:
    """Unit word-piece vectors of each text from the sentence encoder (no [CLS]/[SEP])."""
    model = getattr(embedder, "_model", None)  # the SentenceTransformer
    if model is None:
        sys.exit("--scorer tokens needs the torch backend (classifier.yaml: backend: torch)")
    found = {}
    for text, matrix in zip(texts, model.encode(texts, output_value="token_embeddings", show_progress_bar=False)):
        m = np.asarray(matrix)[1:-1]
        found[text] = m / np.linalg.norm(m, axis=1, keepdims=True)
    return found


def alignment(a: np.ndarray, b: np.ndarray) -> float:
    sims = a @ b.T
    precision, recall = sims.max(1).mean(), sims.max(0).mean()
    return float(2 * precision * recall / (precision + recall))


def report(name: str, rows: list[dict], shipped: Thresholds, args) -> None:
    kinds = Counter(r["kind"] for r in rows)
    print(f"-- {name}: {len(rows)} pairs ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    line("shipped thresholds", shipped, rows)
    for kind in sorted(kinds):
        wrong = [r for r in rows if r["kind"] == kind and measure([r], shipped)[2]["tp"] + measure([r], shipped)[2]["tn"] == 0]
        print(f"    {kind:<16} wrong at the shipped thresholds: {len(wrong)} of {kinds[kind]}")
    for label, two in (("one cosine", False), ("two thresholds", True)):
        precisions, recalls = [], []
        for seed in range(args.splits):
            shuffled = rows[:]
            random.Random(seed).shuffle(shuffled)
            halves = shuffled[::2], shuffled[1::2]
            for train, test in (halves, halves[::-1]):
                p, r, _ = measure(test, fit(train, args.min_precision, two))
                precisions.append(p)
                recalls.append(r)
        print(f"  2-fold, {label:<14} over {args.splits} splits: precision median {np.median(precisions):.3f} "
              f"(min {min(precisions):.3f}), recall median {np.median(recalls):.3f} (min {min(recalls):.3f})")
    line("one cosine, fitted on the whole set", fit(rows, args.min_precision, False), rows)
    line("two thresholds, fitted on the whole set", fit(rows, args.min_precision, True), rows)
    line("cosine alone (no lexical check), fitted", fit(rows, args.min_precision, False, lexical=False), rows,
         lexical=False)


if __name__ == "__main__":
    main()
