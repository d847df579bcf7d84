"""Fit per-type thresholds on a labelled set and write them into classifier.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classifier import TYPES, Classifier, decide
from .dataset import Item
from .evaluate import Report, evaluate
from .models import EscalationType

MAX_NONE_ESCALATED = 0.05
MIN_SAFETY_RECALL = 0.95


@dataclass(frozen=True)
class FitResult:
    thresholds: dict[EscalationType, float]
    before: float
    after: float


def fit_thresholds(classifier: Classifier, items: list[Item], passes: int = 3,
                   scored: tuple[np.ndarray, list[tuple[EscalationType, float]]] | None = None, shared: bool = False) -> FitResult:
    """Coordinate ascent over thresholds, maximising macro-F1 while keeping the share of proceed
    items escalated and safety recall inside the product's targets.

    ``shared``: one threshold for every type but safety, plus safety's own. Fewer numbers fitted
    on a small set can carry over better; on dev.jsonl/agent_dev.jsonl per-type thresholds did
    better (README, Accuracy), so per-type is the default."""
    settings = classifier.settings
    scores, nearest = scored if scored is not None else classifier.score([i.text for i in items])
    rules = [classifier.rules.match(" ".join(i.text.split()), i.context or {}) for i in items]
    gold = [i.label or "none" for i in items]
    order = classifier.policy.matrix.order
    grid = np.linspace(-0.3, 0.3, 61)  # thresholds are leads over the 'none' score
    current: dict[EscalationType, float] = {t: settings.threshold(t) for t in TYPES if t is not EscalationType.none}

    def objective(th: dict[EscalationType, float]) -> float:
        pred = [decide(s, r, settings, order, th, n).type.value for s, r, n in zip(scores, rules, nearest)]
        return fit_measure(evaluate(gold, pred))

    # A type with no item in the file keeps its threshold: nothing there says where it should be.
    present = {t for t in current if t.value in gold}
    others: list[EscalationType] = [t for t in current if t is not EscalationType.safety and t in present]
    groups: list[list[EscalationType]] = [others, [EscalationType.safety]] if shared else [[t] for t in current]
    groups = [[t for t in g if t in present] for g in groups]
    groups = [g for g in groups if g]
    if shared:  # start from one common value so the ascent moves the group together
        current = {**current, **{t: current[others[0]] for t in others}} if others else current
    before = best = objective(current)
    for _ in range(passes):
        improved = False
        for group in groups:
            got = np.array([objective({**current, **{t: float(v) for t in group}}) for v in grid])
            top = float(got.max())
            if top < best - 1e-9:
                continue
            value = _plateau_middle(grid, got >= top - 1e-9)
            if top > best + 1e-9 or any(abs(value - current[t]) > 1e-9 for t in group):
                improved = True
            best, current = max(best, top), {**current, **{t: value for t in group}}
        if not improved:
            break
    return FitResult({t: round(v, 4) for t, v in current.items()}, before, best)


def fit_measure(rep: Report) -> float:
    """What ``fit`` maximises: macro-F1 less penalties for missing the product's targets."""
    # Escalating proceed items is what users feel most (an agent that nags), so it costs most.
    penalty = 0.0
    if rep.none_escalated is not None and rep.none_escalated > MAX_NONE_ESCALATED:
        penalty += (rep.none_escalated - MAX_NONE_ESCALATED) * 10
    if rep.safety_recall is not None and rep.safety_recall < MIN_SAFETY_RECALL:
        penalty += (MIN_SAFETY_RECALL - rep.safety_recall) * 2
    return rep.macro_f1 - penalty


def _plateau_middle(grid: np.ndarray, best: np.ndarray) -> float:
    """The middle of the longest run of grid values that all score best. Every value there fits
    the file equally well; the middle leaves the widest margin on both sides, so it carries over
    best to requests that are not in the file."""
    runs, start = [], None
    for i, ok in enumerate([*best, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i - 1))
            start = None
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    return round(float(grid[(lo + hi) // 2]), 4)


def write_thresholds(path: Path, thresholds: dict[EscalationType, float]) -> None:
    """Replace the ``thresholds:`` entry of classifier.yaml, keeping the author's comments."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    body = ", ".join(f"{t.value}: {v}" for t, v in sorted(thresholds.items(), key=lambda kv: kv[0].value))
    block = f"thresholds: {{{body}}}\n"
    pattern = re.compile(r"^thresholds:.*\n(?:[ \t]+.*\n)*", re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(block, text, count=1)
    else:
        text = text + ("" if text.endswith("\n") or not text else "\n") + block
    path.write_text(text, encoding="utf-8")
