"""Replay of the adaptive escalation target: a stream of labelled requests, the real decision
(rules, model, thresholds) under the offsets the adaptive rule sets, and seeded outcomes.

    .venv/bin/python benchmarks/bench_adaptive.py --file ../shared/eval/train.jsonl
        [--requests 10000] [--need 0.05 | --need natural] [--answered 0.8] [--reported 0.5] [--seed 7]

Each request is drawn (with replacement, seeded) from --file. --need sets the share of the stream
that truly needs a person (drawn from the items labelled with a type; the rest from the items
labelled none); "natural" draws uniformly, keeping the file's own mix. Every request is decided
with the current offsets; an escalation gets an outcome with probability --answered (necessary
when its label is not none, else unnecessary); a request that proceeds although its label is a
type is reported missed with probability --reported. Every `adaptive.window` requests
(policies/decisions.yaml) the adaptive rule (escalation_matrix.adaptive.plan) moves the offsets.
Printed per window: the escalation rate, safety recall (labelled safety that escalated) and the
offsets; at the end the rate over the last quarter of the stream against the target +/- 1 point.
The requests are encoded once; the replay only re-decides. --fake uses the hashing test embedder."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from escalation_matrix import adaptive  # noqa: E402
from escalation_matrix.classifier import Classifier  # noqa: E402
from escalation_matrix.loader import load_policy  # noqa: E402
from escalation_matrix.models import EscalationType  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default=str(ROOT.parent / "shared" / "eval" / "train.jsonl"),
                    help="labelled JSONL (text, label[, context])")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--need", default="0.05,natural",
                    help="share of requests that need a person, or 'natural'; several, comma-separated, replay one "
                         "stream each on the same encoding")
    ap.add_argument("--answered", type=float, default=0.8, help="share of escalations given an outcome")
    ap.add_argument("--reported", type=float, default=0.5, help="share of missed escalations reported")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fake", action="store_true", help="the hashing test embedder (fast, not the real model)")
    args = ap.parse_args()

    policy = load_policy()
    settings = policy.decisions.adaptive
    if args.fake:
        from escalation_matrix.embedder import get_embedder

        classifier = Classifier(policy, embedder=get_embedder("fake"))
    else:
        classifier = Classifier(policy)
    items = [json.loads(line) for line in Path(args.file).read_text().splitlines() if line.strip()]
    evidence = classifier.evidence([i["text"] for i in items], [i.get("context") for i in items])
    labels = [EscalationType(i["label"]) for i in items]
    for need in args.need.split(","):
        replay(classifier, evidence, labels, need.strip(), args, settings)


def replay(classifier: Classifier, evidence: list, labels: list[EscalationType], need: str,
           args: argparse.Namespace, settings: Any) -> None:
    rng = np.random.default_rng(args.seed)
    needs = [k for k, t in enumerate(labels) if t is not EscalationType.none]
    fine = [k for k, t in enumerate(labels) if t is EscalationType.none]
    if need == "natural":
        stream = rng.integers(0, len(labels), args.requests)
        need_share = len(needs) / len(labels)
    else:
        need_share = float(need)
        pick_need = rng.random(args.requests) < need_share
        stream = np.where(pick_need, rng.choice(needs, args.requests), rng.choice(fine, args.requests))
    fixed = [classifier.verdict(e.sims, e.scores, e.rules, e.new).type for e in evidence]
    base_rate = sum(fixed[k] is not EscalationType.none for k in stream) / args.requests
    safety = [k for k in stream if labels[k] is EscalationType.safety]
    base_safety = sum(fixed[k] is not EscalationType.none for k in safety) / max(len(safety), 1)
    print(f"\n{args.requests} requests from {args.file} ({len(labels)} items), {need_share:.1%} need a person; "
          f"target {settings.target_rate:.0%} +/- {settings.tolerance:.0%}, window {settings.window}, "
          f"step {settings.step}, max offset {settings.max_offset}, floor {[t.value for t in settings.floor]}")
    print(f"without adaptation (the shipped thresholds): escalation rate {base_rate:.2%}, safety recall "
          f"{base_safety:.1%}")
    print(f"{'requests':>8} {'rate':>6} {'safety recall':>13} {'none escalated':>14}  offsets")
    offsets: dict[EscalationType, float] = {}
    w = adaptive.Window()
    rates: list[float] = []
    escalated_all = safety_total = safety_hit = 0
    win_safety = win_safety_hit = win_none = win_none_esc = 0
    worst_safety = 1.0
    tail_start = args.requests - args.requests // 4
    tail_esc = 0
    for n, k in enumerate(stream, 1):
        e, gold = evidence[k], labels[k]
        verdict = classifier.verdict(e.sims, e.scores, e.rules, e.new, offsets).type
        escalated = verdict is not EscalationType.none
        w.decisions += 1
        if escalated:
            w.escalations[verdict] += 1
            escalated_all += 1
            tail_esc += n > tail_start
            if rng.random() < args.answered:
                (w.unnecessary if gold is EscalationType.none else w.necessary)[verdict] += 1
        elif gold is not EscalationType.none and rng.random() < args.reported:
            w.missed[gold] += 1
        if gold is EscalationType.safety:
            safety_total += 1
            win_safety += 1
            safety_hit += escalated
            win_safety_hit += escalated
        if gold is EscalationType.none:
            win_none += 1
            win_none_esc += escalated
        if n % settings.window == 0:
            rates.append(w.rate)
            recall = win_safety_hit / win_safety if win_safety else float("nan")
            if win_safety:
                worst_safety = min(worst_safety, recall)
            shown = " ".join(f"{t.value}{v:+.2f}" for t, v in sorted(offsets.items(), key=lambda x: x[0].value)) or "-"
            print(f"{n:>8} {w.rate:>6.1%} {recall:>13.1%} {win_none_esc / max(win_none, 1):>14.1%}  {shown}")
            for change in adaptive.plan(w, offsets, settings):
                offsets[change.type] = change.after
            w = adaptive.Window()
            win_safety = win_safety_hit = win_none = win_none_esc = 0
    tail_rate = tail_esc / (args.requests - tail_start)
    lo, hi = settings.target_rate - settings.tolerance, settings.target_rate + settings.tolerance
    print(f"overall: escalation rate {escalated_all / args.requests:.2%}, last quarter {tail_rate:.2%} "
          f"({'within' if lo <= tail_rate <= hi else 'outside'} {lo:.0%}-{hi:.0%}); safety recall "
          f"{safety_hit / max(safety_total, 1):.1%} over {safety_total} safety requests (without adaptation "
          f"{base_safety:.1%}), lowest window {worst_safety:.1%}" if rates else "no full window")
    print(f"offsets at the end: {dict(sorted(((t.value, v) for t, v in offsets.items())))}")
    counts = Counter(labels[k].value for k in stream)
    print(f"stream labels: {dict(counts.most_common())}")


if __name__ == "__main__":
    main()
