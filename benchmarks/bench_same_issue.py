"""Same-issue detection on labelled sets of request/question pairs, with the real model.

    .venv/bin/python benchmarks/bench_same_issue.py [--pairs tests/data/same_issue_pairs.jsonl]
        [--holdout tests/data/same_issue_pairs_holdout.jsonl] [--min-precision 0.97] [--splits 5]

The shipped detector is the same-issue pair model (``trained/same_issue/``, see
escalation_matrix.pairmodel): printed first, at the threshold in its manifest, on each set. The
cosine detector below it is what decides when the classifier runs without the trained model.

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

from escalation_matrix.classifier import load_pair_model  # noqa: E402
from escalation_matrix.embedder import get_embedder  # noqa: E402
from escalation_matrix.loader import load_policy  # noqa: E402
from escalation_matrix.matching import same_words  # noqa: E402
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
    parser.add_argument("--timing", action="store_true",
                        help="also time the pair model: one new call against 1, 5, 20 and 50 stored issues")
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
    pair = load_pair_model(policy.classifier) if policy.conversation.same_issue_model == "pair" else None
    shipped = (policy.conversation.same_issue_similarity, policy.conversation.same_issue_similarity_agreeing)
    if pair is not None:
        print(f"== the shipped detectors: the same-issue pair model, P(same) >= {pair.threshold:.4f} (the threshold "
              "in trained/same_issue/manifest.json; the same words are always the same issue)")
        for r, score in zip(rows, pair.scores([(r["a"], r["b"]) for r in rows])):
            r["pair"] = float(score)
            r["pair_says"] = r["pair"] >= pair.threshold or same_words(r["a"], r["b"])
            alone = measure([{**r, "cos": r["pooled"]}], shipped)[2]
            r["cosine_says"] = alone["tp"] + alone["fp"] > 0
        for label, says in (("answered issues (re-ask): the pair model", lambda r: r["pair_says"]),
                            ("open escalations of the task (repeat): pair model or cosine detector",
                             lambda r: r["pair_says"] or r["cosine_says"])):
            print(f"-- {label}")
            for name, found in sets.items():
                outcome: Counter = Counter()
                for r in found:
                    said = says(r)
                    outcome[("tp" if r["same"] else "fp") if said else ("fn" if r["same"] else "tn")] += 1
                precision = outcome["tp"] / max(1, outcome["tp"] + outcome["fp"])
                recall = outcome["tp"] / max(1, outcome["tp"] + outcome["fn"])
                kinds = Counter(r["kind"] for r in found)
                wrong = Counter(r["kind"] for r in found if says(r) != r["same"])
                print(f"  {name}: {len(found)} pairs  precision {precision:.3f}  recall {recall:.3f}  (tp "
                      f"{outcome['tp']}, fp {outcome['fp']}, fn {outcome['fn']}, tn {outcome['tn']}); wrong: "
                      + ", ".join(f"{k} {wrong[k]} of {kinds[k]}" for k in sorted(kinds)))
        if args.timing:
            timing(pair, [r for found in sets.values() for r in found])
        print("== the cosine detector (lexical check + cosine thresholds): what decides without the trained model, "
              "or with same_issue_model: cosine")
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


def timing(pair, rows: list[dict], repeats: int = 30) -> None:
    """Milliseconds to compare one new call with k stored issues as the conversation rules do
    (``matching.closest``: the pair model reads at most ``PAIR_CANDIDATES`` of them, the closest by
    cosine, each pair in both orders), median and 95th percentile over ``repeats`` calls. The
    texts' vectors are computed beforehand, as the guard stores them."""
    import time

    from escalation_matrix.matching import PAIR_CANDIDATES, Issue, closest

    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    vectors = dict(zip(texts, get_embedder("bundled", "onnx").encode(texts)))
    rng = random.Random(13)
    never = type("Never", (), {"threshold": 2.0, "scores": pair.scores})()  # nothing matches: every candidate is read
    for k in (1, 5, 20, 50):
        took = []
        for _ in range(repeats):
            new, *stored = rng.sample(texts, k + 1)
            found = [{"id": str(i), "request": old, "agent_question": None, "question": None,
                      "request_vector": vectors[old].tobytes(), "question_vector": vectors[old].tobytes()}
                     for i, old in enumerate(stored)]
            started = time.perf_counter()
            closest(found, Issue(new, vectors[new]), 0.8, pair=never)
            took.append((time.perf_counter() - started) * 1000)
        print(f"  timing: one call against {k:>2} stored issue(s) (the model reads {min(k, PAIR_CANDIDATES)}): "
              f"median {np.median(took):.1f} ms, p95 {np.percentile(took, 95):.1f} ms ({repeats} calls)")


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
