"""A pair classifier (cross-encoder) for same-issue detection: the bundled MiniLM reads both texts
at once, so attention can compare the words of one with the words of the other, and a head scores
"same issue". ``--arch shipped`` (the default) trains the form the server uses
(escalation_matrix.pairmodel; ``--save`` writes a model folder such as trained/same_issue);
``--arch cross`` is an earlier whole-model experiment. Figures and the commands behind them:
benchmarks/results/same_issue_pair_model.md.

    .venv/bin/python benchmarks/train_same_issue_cross.py --train tests/data/same_issue_train.jsonl \
        [--train MORE.jsonl ...] [--eval NAME=PATH ...] [--folds 5] [--epochs N] [--save FOLDER] \
        [--arch cross [--lr 5e-5] [--lora 0]]

1. ``--folds`` k-fold cross-validation on the training pairs (folds keep pairs that share a text
   together): per fold the model is trained on the other folds, its threshold fitted there (the
   lowest keeping precision >= --min-precision) and measured on the left-out fold.
2. The model trained on all training pairs, threshold fitted on the training pairs only, then
   measured on each --eval set. Only aggregate figures are printed for --eval sets.

A pair is scored in both orders and the two probabilities averaged, so the score is symmetric.
Each variant is measured with the server's lexical check as a veto ("lexical + score") and
without it ("score alone"). Texts are fed with abbreviations written out, as the server does.
``--arch cross`` fine-tunes the whole model unless ``--lora R`` adapts it with LoRA of rank R.
CPU only; torch runs on --threads threads."""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_same_issue import auc as cosine_auc, groups, load, pair_set_arguments  # noqa: E402
from escalation_matrix.embedder import _resolve_model  # noqa: E402
from escalation_matrix.finetune import warmup_schedule  # noqa: E402
from escalation_matrix.sameissue import conflict, expand_abbreviations  # noqa: E402


class Shipped:
    """The form that ships (escalation_matrix.pairmodel): one input "a [SEP] b", a LoRA adapter on
    the layers above ``frozen_layers`` and a two-class head, scored through the serving path
    (TrainedModel on ONNX Runtime) from a folder written by finetune.save."""

    def __init__(self, threads: int, work: Path) -> None:
        import torch

        torch.set_num_threads(threads)
        self.base = _resolve_model("bundled")
        self.work = work
        self.runs = 0

    def train(self, pairs: list[dict], args: Any) -> Any:
        from escalation_matrix import finetune, pairmodel

        config = pairmodel.default_config()
        config.epochs, config.seed = args.epochs or config.epochs, args.seed
        if args.frozen_layers is not None:
            config.frozen_layers = args.frozen_layers
        weights = pairmodel.train([pairmodel.Pair(p["a"], p["b"], bool(p["same"])) for p in pairs], self.base, config,
                                  unrelated_pairs=unrelated_count(args))
        self.runs += 1
        folder = self.work / f"run{self.runs}"
        finetune.save(weights, folder, {"pairs": len(pairs)})
        return folder, weights

    def scores(self, trained: Any, pairs: list[dict], pooling: str) -> list[float]:
        from escalation_matrix.pairmodel import PairModel as Served

        served = Served(trained[0], self.base, "onnx", cache=self.work / "cache")
        return [float(x) for x in served.scores([(p["a"], p["b"]) for p in pairs])]


class PairModel:
    def __init__(self, threads: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        path = _resolve_model("bundled")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.base = AutoModel.from_pretrained(path)

    def _batch(self, pairs: list[tuple[str, str]]) -> dict:
        return self.tokenizer([expand_abbreviations(a) for a, _ in pairs], [expand_abbreviations(b) for _, b in pairs],
                              padding=True, truncation=True, max_length=160, return_tensors="pt")

    def _logits(self, model: Any, head: Any, pairs: list[tuple[str, str]], pooling: str) -> Any:
        enc = self._batch(pairs)
        hidden = model(**enc).last_hidden_state
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
        return head(pooled).squeeze(-1)

    def train(self, pairs: list[dict], args: Any) -> tuple[Any, Any]:
        torch = self.torch
        random.seed(args.seed)
        torch.manual_seed(args.seed)
        model = copy.deepcopy(self.base)
        if args.lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=args.lora, lora_alpha=2 * args.lora, lora_dropout=0.1,
                                                     target_modules=["query", "key", "value", "dense"], bias="none"))
        head = torch.nn.Linear(model.config.hidden_size, 1)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW([{"params": params, "lr": args.lr},
                                       {"params": head.parameters(), "lr": args.head_lr}], weight_decay=0.01)
        examples = [((p["a"], p["b"]), float(p["same"])) for p in pairs] + \
                   [((p["b"], p["a"]), float(p["same"])) for p in pairs]
        per_epoch = math.ceil(len(examples) / args.batch)
        total = per_epoch * args.epochs
        scheduler = warmup_schedule(torch, optimizer, total, 0.1)
        rng = random.Random(args.seed)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        model.train()
        for _ in range(args.epochs):
            rng.shuffle(examples)
            for start in range(0, len(examples), args.batch):
                batch = examples[start:start + args.batch]
                logits = self._logits(model, head, [x for x, _ in batch], args.pooling)
                loss = loss_fn(logits, torch.tensor([y for _, y in batch]))
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_([*params, *head.parameters()], 1.0)
                optimizer.step()
                scheduler.step()
        model.eval()
        return model, head

    def scores(self, trained: tuple[Any, Any], pairs: list[dict], pooling: str) -> list[float]:
        model, head = trained
        out = []
        with self.torch.no_grad():
            for start in range(0, len(pairs), 64):
                chunk = pairs[start:start + 64]
                ab = self.torch.sigmoid(self._logits(model, head, [(p["a"], p["b"]) for p in chunk], pooling))
                ba = self.torch.sigmoid(self._logits(model, head, [(p["b"], p["a"]) for p in chunk], pooling))
                out.extend(((ab + ba) / 2).tolist())
        return out


def measure(rows: list[dict], threshold: float, lexical: bool) -> tuple[float, float, Counter]:
    outcome: Counter = Counter()
    for r in rows:
        said = r["score"] >= threshold and not (lexical and r["conflict"])
        outcome[("tp" if r["same"] else "fp") if said else ("fn" if r["same"] else "tn")] += 1
    precision = outcome["tp"] / (outcome["tp"] + outcome["fp"]) if outcome["tp"] + outcome["fp"] else 1.0
    recall = outcome["tp"] / max(1, outcome["tp"] + outcome["fn"])
    return precision, recall, outcome


def fit(rows: list[dict], min_precision: float, lexical: bool) -> float:
    """The lowest threshold (over the scores seen) whose precision reaches ``min_precision``."""
    for t in sorted({r["score"] for r in rows}):
        if measure(rows, t, lexical)[0] >= min_precision:
            return t
    return 1.01


def auc(rows: list[dict]) -> float:
    return cosine_auc(rows, "score")


def fmt(o: Counter) -> str:
    return f"(tp {o['tp']}, fp {o['fp']}, fn {o['fn']}, tn {o['tn']})"


def unrelated_count(args: Any) -> int:
    from escalation_matrix import pairmodel

    return pairmodel.UNRELATED if args.unrelated is None else int(args.unrelated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    pair_set_arguments(parser)
    parser.add_argument("--epochs", type=int, help="default: the shipped config's (3) for --arch shipped, 6 for cross")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--lora", type=int, default=0, help="LoRA rank; 0 fine-tunes the whole encoder")
    parser.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    parser.add_argument("--arch", choices=["shipped", "cross"], default="shipped",
                        help="shipped: the form escalation_matrix.pairmodel serves (single input with a separator, "
                        "LoRA, two-class head; --epochs and --seed apply); cross: this script's own experiment")
    parser.add_argument("--save", help="(shipped) write the model trained on all training pairs here, with the "
                        "threshold fitted on the cross-validation's left-out scores in its manifest")
    parser.add_argument("--unrelated", type=int, help="(shipped) unrelated pairs drawn from each run's training texts "
                        "(pairmodel.unrelated); default: the shipped model's")
    parser.add_argument("--frozen-layers", type=int, help="(shipped) layers left un-adapted; default: the shipped config's")
    parser.add_argument("--oof", help="write the left-out scores of the cross-validation to this JSONL file")
    parser.add_argument("--scores", help="append the --eval sets' scores to this JSONL file (for error analysis)")
    args = parser.parse_args()
    if args.arch == "cross" and args.epochs is None:
        args.epochs = 6
    pairs = [{**p, "first_file": i == 0} for i, path in enumerate(args.train) for p in load(path)]
    evals = {name: load(path) for name, path in (e.split("=", 1) for e in args.eval)}
    for p in [*pairs, *(q for e in evals.values() for q in e)]:
        p["conflict"] = conflict(p["a"], p["b"])
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="pairmodel-"))
    pm: Any = Shipped(args.threads, work) if args.arch == "shipped" else PairModel(args.threads)
    if args.arch == "shipped":
        print(f"{len(pairs)} training pairs; the shipped form (escalation_matrix.pairmodel.default_config), "
              f"epochs {args.epochs or 'as shipped'} seed {args.seed}", flush=True)
    else:
        print(f"{len(pairs)} training pairs; epochs {args.epochs} lr {args.lr} head-lr {args.head_lr} lora {args.lora} "
              f"pooling {args.pooling} batch {args.batch} seed {args.seed}", flush=True)
    variants = (("lexical + score", True), ("score alone", False))
    if args.folds > 1:
        gid = groups(pairs)
        ids = sorted(set(gid))
        random.Random(args.seed).shuffle(ids)
        fold_of = {g: i % args.folds for i, g in enumerate(ids)}
        pooled: dict[str, Counter] = {label: Counter() for label, _ in variants}
        per_fold: dict[str, list] = {label: [] for label, _ in variants}
        aucs = []
        oof: list[dict] = []
        for k in range(args.folds):
            train = [dict(p) for p, g in zip(pairs, gid) if fold_of[g] != k]
            test = [dict(p) for p, g in zip(pairs, gid) if fold_of[g] == k]
            trained = pm.train(train, args)
            for rows in (train, test):
                for r, s in zip(rows, pm.scores(trained, rows, args.pooling)):
                    r["score"] = s
            oof.extend({**r, "fold": k} for r in test)
            aucs.append(auc([r for r in test if not r["conflict"]]))
            for label, lexical in variants:
                t = fit(train, args.min_precision, lexical)
                p, r, o = measure(test, t, lexical)
                pooled[label] += o
                per_fold[label].append((t, p, r))
            print(f"  fold {k + 1}/{args.folds} done ({time.perf_counter() - started:.0f} s); AUC past the lexical "
                  f"check {aucs[-1]:.3f}", flush=True)
        print(f"== {args.folds}-fold cross-validation on the training pairs (threshold fitted on the other folds)")
        print(f"  AUC over pairs the lexical check lets through, mean {np.nanmean(aucs):.3f}")
        for label, _ in variants:
            o = pooled[label]
            print(f"    {label:<16} pooled precision {o['tp'] / max(1, o['tp'] + o['fp']):.3f} "
                  f"recall {o['tp'] / max(1, o['tp'] + o['fn']):.3f} {fmt(o)}; per fold (threshold p r): "
                  + ", ".join(f"{t:.3f} {p:.2f} {r:.2f}" for t, p, r in per_fold[label]))
        # The training pairs' own scores are near 0 or 1 once the model fits them, so a threshold
        # fitted there says little; fit it on left-out scores instead (of the other folds' models).
        # Only the first --train file's pairs count here: later files (small edits) add easy
        # rewordings that would make any threshold look more precise than it is.
        oof_thresholds = {}
        first = [r for r in oof if r["first_file"]]
        if len(args.train) > 1:
            print(f"  left-out figures below: the {len(first)} pairs of {args.train[0]} only")
        for label, lexical in variants:
            crossed: Counter = Counter()
            for k in range(args.folds):
                t = fit([r for r in first if r["fold"] != k], args.min_precision, lexical)
                crossed += measure([r for r in first if r["fold"] == k], t, lexical)[2]
            oof_thresholds[label] = fit(first, args.min_precision, lexical)
            p, r, o = measure(first, oof_thresholds[label], lexical)
            print(f"    {label:<16} threshold fitted on the other folds' left-out scores: pooled precision "
                  f"{crossed['tp'] / max(1, crossed['tp'] + crossed['fp']):.3f} recall "
                  f"{crossed['tp'] / max(1, crossed['tp'] + crossed['fn']):.3f} {fmt(crossed)}; fitted on all "
                  f"left-out scores: {oof_thresholds[label]:.3f} (there p {p:.3f} r {r:.3f})")
        if args.oof:
            Path(args.oof).write_text("".join(json.dumps(r) + "\n" for r in oof))
    if args.no_final:
        return
    trained = pm.train(pairs, args)
    for r, s in zip(pairs, pm.scores(trained, pairs, args.pooling)):
        r["score"] = s
    print(f"== trained on all {len(pairs)} training pairs; threshold fitted on them "
          f"({time.perf_counter() - started:.0f} s)")
    thresholds = {label: fit(pairs, args.min_precision, lexical) for label, lexical in variants}
    if args.folds > 1:
        thresholds = {f"{label}, left-out fit": oof_thresholds[label] for label, _ in variants} | thresholds
    lexical_of = {label: not label.startswith("score alone") for label in thresholds}
    for name, found in evals.items():
        for r, s in zip(found, pm.scores(trained, found, args.pooling)):
            r["score"] = s
        print(f"  {name} ({len(found)} pairs), AUC past the lexical check {auc([r for r in found if not r['conflict']]):.3f}")
        for label, t in thresholds.items():
            p, r, o = measure(found, t, lexical_of[label])
            print(f"    {label:<30} threshold {t:.3f}  precision {p:.3f}  recall {r:.3f}  {fmt(o)}")
        for label, lexical in variants:
            p, r, o = measure(found, 0.5, lexical)
            print(f"    {label:<30} threshold 0.5    precision {p:.3f}  recall {r:.3f}  {fmt(o)}")
        if args.scores:
            with open(args.scores, "a") as out:
                out.writelines(json.dumps({**r, "set": name}) + "\n" for r in found)
    if args.save and args.arch == "shipped":
        from escalation_matrix import finetune

        chosen = thresholds.get("score alone, left-out fit", thresholds["score alone"])
        finetune.save(trained[1], Path(args.save), {
            "pairs": len(pairs), "unrelated_pairs": unrelated_count(args), "train_files": [Path(t).name for t in args.train],
            "decision": {"same": round(float(chosen), 6)},
            "threshold_fitted": "lowest P(same) keeping precision >= %.2f on the %d-fold cross-validation's "
                                "left-out scores" % (args.min_precision, args.folds)})
        print(f"saved to {args.save} (threshold {chosen:.4f})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
