"""Cross-validation of how the fine-tuned model's probabilities become decisions, and of averaging
models trained with several seeds. README "Accuracy" has the figures.

    .venv/bin/python benchmarks/cv_decisions.py ../shared/eval/train.jsonl --out /tmp/cv \
        [--seeds 13,14] [--epochs 5] [--folds 5] [--exemplars DIR | --no-exemplars]

Per fold of FILE (the folds `train --cv` uses), one model per seed is trained as `train` trains it:
the fold's training items less a held-out calibration split (the same split for every seed) plus
the exemplars. Models are kept under --out, and one already there is reused, so a second run with
another seed trains only that seed. Measured on the fold's left-out items:

  shipped      temperature and (safety, margin) fitted on the calibration split: `train --cv`
  per-type     the same, then one margin per type (coordinate descent on the calibration split)
  out-of-fold  (safety, margin) fitted on the other folds' left-out predictions: 4x the items
  ensemble     (several seeds) the mean of their logits, then fitted like `shipped`
  soup         (several seeds) one adapter holding the mean of their low-rank updates and heads
               (serves at the cost of one model), then fitted like `shipped`

Printed per procedure: per fold and pooled macro-F1 / proceed items escalated / safety recall, and
the frontier: the best macro-F1 that one pair of decision values reaches on all pooled left-out
predictions under caps on proceed items escalated and on safety recall. The frontier is free of
the fit, so it tells a better model from a luckier fit of the decision values."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from escalation_matrix import finetune  # noqa: E402
from escalation_matrix.calibrate import decision_measure, fit_decision, fit_temperature, softmax  # noqa: E402
from escalation_matrix.classifier import trained_model  # noqa: E402
from escalation_matrix.dataset import Item, read_jsonl  # noqa: E402
from escalation_matrix.evaluate import evaluate  # noqa: E402
from escalation_matrix.loader import Policy, load_policy  # noqa: E402
from escalation_matrix.models import EscalationType  # noqa: E402
from escalation_matrix.rules import RuleEngine  # noqa: E402
from escalation_matrix.trained import Manifest  # noqa: E402
from escalation_matrix.training import decide_each, folds, stratified_split, train_weights  # noqa: E402

SPLIT_SEED = 13  # folds and calibration splits: those of `train --cv` with the default seed
MARGINS = np.round(np.arange(-0.3, 0.91, 0.05), 3)
FRONTIER_CAPS = ((0.06, 0.85), (0.08, 0.90), (0.10, 0.90), (0.11, 0.93), (0.13, 0.95))


class Decider:
    """The server's decision on calibrated probabilities, for any decision values."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.engine = RuleEngine(policy.rules.rules, policy.classifier.contradictions)

    def matches(self, items: list[Item]) -> list[Any]:
        return [self.engine.match(" ".join(i.text.split()), i.context or {}) for i in items]

    def predict(self, probs: np.ndarray, matches: list[Any], values: dict[str, Any]) -> list[str]:
        return decide_each(probs, matches, self.policy, values["safety"], values["margin"], values.get("margins"))

    def fit(self, probs: np.ndarray, matches: list[Any], gold: list[str]) -> dict[str, Any]:
        """(safety, margin) as `train` fits them."""
        fitted = fit_decision(gold, lambda s, m: self.predict(probs, matches, {"safety": s, "margin": m}))
        return {"safety": fitted.safety, "margin": fitted.margin}

    def fit_per_type(self, probs: np.ndarray, matches: list[Any], gold: list[str]) -> dict[str, Any]:
        """The shared fit, then each type's own margin, two passes; a type keeps the shared margin
        when it is among the best."""
        values = self.fit(probs, matches, gold)
        margins: dict[EscalationType, float] = {}
        types = [t for t in EscalationType
                 if t.value in set(gold) and t not in (EscalationType.none, EscalationType.safety, EscalationType.pattern)]
        for _ in range(2):
            for etype in types:
                scores = np.array([decision_measure(evaluate(gold, self.predict(
                    probs, matches, {**values, "margins": {**margins, etype: float(m)}}))) for m in MARGINS])
                best = np.flatnonzero(scores >= scores.max() - 1e-9)
                if any(abs(MARGINS[i] - margins.get(etype, values["margin"])) < 1e-9 for i in best):
                    continue
                margins[etype] = float(MARGINS[best[len(best) // 2]])
        return {**values, "margins": margins}


def soup(folders: list[Path], out: Path) -> Path:
    """One adapter whose update is the mean of the members' updates (their low-rank factors side by
    side, B scaled by 1/k, so alpha/r is unchanged) and whose head is the mean of their heads."""
    from safetensors.numpy import load_file

    if (out / "manifest.json").exists():
        return out
    loras = [load_file(str(f / "adapter.safetensors")) for f in folders]
    heads = [load_file(str(f / "head.safetensors")) for f in folders]
    k = len(folders)
    lora = {name: np.concatenate([x[name].astype(np.float32) for x in loras], axis=0) if ".lora_A" in name
            else np.concatenate([x[name].astype(np.float32) for x in loras], axis=1) / k for name in loras[0]}
    first = Manifest.read(folders[0])
    config = finetune.TrainConfig(**{k_: v for k_, v in first.config.items() if k_ in finetune.TrainConfig.__dataclass_fields__})
    weights = finetune.TrainedWeights(lora, np.mean([h["weight"] for h in heads], 0), np.mean([h["bias"] for h in heads], 0),
                                      config, list(finetune.LABELS), 0.0)
    finetune.save(weights, out, {"exemplar_keys": sorted(first.exemplar_keys)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="labelled JSONL (the training file)")
    ap.add_argument("--out", required=True, help="folder for the fold models (reused when present)")
    ap.add_argument("--seeds", default="13", help="training seeds, comma-separated (default 13: the shipped model's)")
    ap.add_argument("--epochs", type=int, default=finetune.TrainConfig().epochs)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--holdout", type=float, default=0.15)
    ap.add_argument("--exemplars", type=Path, default=ROOT / "embeddings",
                    help="exemplar folder trained with (default: the shipped one); compare an edited copy")
    ap.add_argument("--no-exemplars", action="store_true",
                    help="train on the file's items alone, to measure what the exemplars carry")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    policy = load_policy(ROOT / "policies", ROOT / "phrases", args.exemplars)
    trained_with = dataclasses.replace(policy, exemplars=[]) if args.no_exemplars else policy
    decider = Decider(policy)
    items = read_jsonl(Path(args.file), labelled=True)
    labels = finetune.LABELS
    out = Path(args.out)
    per_fold: list[dict[str, Any]] = []
    for n, held_idx in enumerate(folds(items, args.folds, SPLIT_SEED)):
        held = set(held_idx)
        kept, calib = stratified_split([i for m, i in enumerate(items) if m not in held], args.holdout, SPLIT_SEED)
        test = [items[m] for m in held_idx]
        models = []
        for seed in seeds:
            folder = out / f"e{args.epochs}-s{seed}" / f"fold{n}"
            if not (folder / "manifest.json").exists():
                started = time.perf_counter()
                train_weights(kept, trained_with, folder, finetune.TrainConfig(seed=seed, epochs=args.epochs))
                print(f"fold {n + 1}: trained seed {seed} in {time.perf_counter() - started:.0f} s", flush=True)
            models.append(folder)
        if len(seeds) > 1:
            models.append(soup(models, out / f"e{args.epochs}-soup-{'-'.join(map(str, seeds))}" / f"fold{n}"))
        logits = []
        for folder in models:
            model = trained_model(folder, policy.classifier)
            logits.append(tuple(model.logits(model.encode([" ".join(i.text.split()) for i in part]))
                                for part in (calib, test)))
        fold: dict[str, Any] = {"calib": (decider.matches(calib), [i.label or "none" for i in calib]),
                                "test": (decider.matches(test), [i.label or "none" for i in test]),
                                "logits": {}}
        fold["logits"]["shipped"] = logits[0]
        if len(seeds) > 1:
            fold["logits"]["ensemble"] = (np.mean([c for c, _ in logits[:len(seeds)]], 0),
                                          np.mean([t for _, t in logits[:len(seeds)]], 0))
            fold["logits"]["soup"] = logits[-1]
            for seed, pair in zip(seeds[1:], logits[1:len(seeds)]):
                fold["logits"][f"seed {seed}"] = pair
        y = np.array([labels.index(g) for g in fold["calib"][1]])
        fold["probs"] = {}
        for name, (lc, lt) in fold["logits"].items():
            t = fit_temperature(lc, y)
            fold["probs"][name] = (softmax(lc, t), softmax(lt, t))
        per_fold.append(fold)

    procedures: dict[str, list[tuple[str, str]]] = {}

    def record(name: str, gold: list[str], pred: list[str], values: dict[str, Any]) -> None:
        procedures.setdefault(name, []).extend(zip(gold, pred))
        r = evaluate(gold, pred)
        shown = {k: ({t.value: m for t, m in v.items()} if k == "margins" else v) for k, v in values.items() if v != {}}
        print(f"  {name:<12} {r.macro_f1:.3f} / {r.none_escalated:.3f} / {r.safety_recall:.3f}  {shown}")

    for n, fold in enumerate(per_fold):
        print(f"fold {n + 1} (macro-F1 / proceed escalated / safety recall, decision values):")
        (mc, gc), (mt, gt) = fold["calib"], fold["test"]
        for name, (pc, pt) in fold["probs"].items():
            values = decider.fit(pc, mc, gc)
            record(name, gt, decider.predict(pt, mt, values), values)
        pc, pt = fold["probs"]["shipped"]
        values = decider.fit_per_type(pc, mc, gc)
        record("per-type", gt, decider.predict(pt, mt, values), values)
        others = [f for m, f in enumerate(per_fold) if m != n]
        if others:
            pool = np.concatenate([f["probs"]["shipped"][1] for f in others])
            values = decider.fit(pool, [m for f in others for m in f["test"][0]], [g for f in others for g in f["test"][1]])
            record("out-of-fold", gt, decider.predict(pt, mt, values), values)
    print("\npooled over folds:")
    for name, pairs in procedures.items():
        r = evaluate([g for g, _ in pairs], [p for _, p in pairs])
        print(f"  {name:<12} {r.macro_f1:.3f} / {r.none_escalated:.3f} / {r.safety_recall:.3f}")
    print("\nfrontier (best macro-F1 of one pair of decision values on all left-out predictions):")
    matches = [m for f in per_fold for m in f["test"][0]]
    gold = [g for f in per_fold for g in f["test"][1]]
    grid = [(s, m) for s in np.round(np.arange(0.1, 0.71, 0.05), 2) for m in np.round(np.arange(0.0, 0.91, 0.05), 2)]
    for name in per_fold[0]["probs"]:
        probs = np.concatenate([f["probs"][name][1] for f in per_fold])
        reports = {(s, m): evaluate(gold, decider.predict(probs, matches, {"safety": float(s), "margin": float(m)}))
                   for s, m in grid}
        cells = []
        for cap, floor in FRONTIER_CAPS:
            ok = [(r.macro_f1, key) for key, r in reports.items()
                  if r.none_escalated is not None and r.none_escalated <= cap and (r.safety_recall or 0) >= floor]
            cells.append(f"escalated <= {cap:.0%}, safety >= {floor:.2f}: "
                         + (f"{max(ok)[0]:.3f}" if ok else "none reach"))
        print(f"  {name:<12} " + " | ".join(cells))


if __name__ == "__main__":
    main()
