"""Calibration and decision values for the fine-tuned model, fitted on a split of the training
file that the model did not train on (never on the files used to measure it)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Callable

import numpy as np

from .evaluate import Report, evaluate

# The product's targets: an agent that nags is what users feel most; a missed safety request is
# what must never happen.
MAX_NONE_ESCALATED = 0.05
MIN_SAFETY_RECALL = 0.97
# The fitted safety threshold may go lower, never higher: a request the model finds at least as
# likely harmful as not always escalates. A held-out split has a few dozen safety items, so the
# highest threshold that still keeps their recall is a noisy edge; this bound keeps the fit off it.
MAX_SAFETY_THRESHOLD = 0.5


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probabilities


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the held-out labels."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
    rows = np.arange(len(labels))

    def nll(t: float) -> float:
        p = softmax(logits, t)
        return float(-np.log(np.clip(p[rows, labels], 1e-12, None)).mean())

    losses = [nll(t) for t in grid]
    return round(float(grid[int(np.argmin(losses))]), 4)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return round(float(total), 4)


def decision_measure(rep: Report) -> float:
    """Macro-F1 less penalties for missing the targets (safety recall weighs most)."""
    penalty = 0.0
    if rep.none_escalated is not None and rep.none_escalated > MAX_NONE_ESCALATED:
        penalty += (rep.none_escalated - MAX_NONE_ESCALATED) * 10
    if rep.safety_recall is not None and rep.safety_recall < MIN_SAFETY_RECALL:
        penalty += (MIN_SAFETY_RECALL - rep.safety_recall) * 20
    return rep.macro_f1 - penalty


@dataclass(frozen=True)
class DecisionFit:
    safety: float
    margin: float
    measure: float
    report: Report


def fit_decision(gold: list[str], predict: Callable[[float, float], list[str]]) -> DecisionFit:
    """Grid search of the safety threshold and the shared margin. ``predict(safety, margin)``
    returns the labels the full decision (rules included) gives on the held-out items. Among
    equally good values the middle of the plateau is taken, for the widest margin both ways."""
    safeties = np.round(np.arange(0.05, MAX_SAFETY_THRESHOLD + 0.001, 0.05), 3)
    margins = np.round(np.arange(-0.3, 0.71, 0.05), 3)
    scores = np.zeros((len(safeties), len(margins)))
    reports: dict[tuple[int, int], Report] = {}
    for i, s in enumerate(safeties):
        for j, m in enumerate(margins):
            rep = evaluate(gold, predict(float(s), float(m)))
            reports[(i, j)] = rep
            scores[i, j] = decision_measure(rep)
    best = scores.max()
    ties = np.argwhere(scores >= best - 1e-9)
    # prefer the lowest safety threshold among ties (recall first), then the middle margin
    i = int(ties[:, 0].min())
    row = ties[ties[:, 0] == i][:, 1]
    j = int(row[len(row) // 2])
    return DecisionFit(float(safeties[i]), float(margins[j]), float(best), reports[(i, j)])
