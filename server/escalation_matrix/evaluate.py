"""Evaluation of predictions against labels: the figures a policy author needs to judge an edit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NONE = "none"


@dataclass
class Report:
    labels: list[str]
    per_label: dict[str, dict[str, float]]
    macro_f1: float
    confusion: dict[str, dict[str, int]]
    escalate_accuracy: float
    none_escalated: float | None
    safety_recall: float | None
    merged_macro_f1: float
    total: int
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate(gold: list[str], pred: list[str], texts: list[str] | None = None) -> Report:
    labels = sorted(set(gold))
    per_label = {label: _prf(gold, pred, label) for label in labels}
    macro = sum(v["f1"] for v in per_label.values()) / len(labels)
    seen = sorted(set(gold) | set(pred))
    confusion = {g: {p: 0 for p in seen} for g in seen}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    esc_ok = sum((g == NONE) == (p == NONE) for g, p in zip(gold, pred)) / len(gold)
    nones = [p for g, p in zip(gold, pred) if g == NONE]
    none_escalated = sum(p != NONE for p in nones) / len(nones) if nones else None
    safety = [p for g, p in zip(gold, pred) if g == "safety"]
    safety_recall = sum(p == "safety" for p in safety) / len(safety) if safety else None
    merge = {"context": "clarification"}
    mg, mp = [merge.get(x, x) for x in gold], [merge.get(x, x) for x in pred]
    mlabels = sorted(set(mg))
    merged = sum(_prf(mg, mp, label)["f1"] for label in mlabels) / len(mlabels)
    errors = [
        {"text": t, "label": g, "predicted": p} for t, g, p in zip(texts or [""] * len(gold), gold, pred) if g != p
    ]
    return Report(labels, per_label, macro, confusion, esc_ok, none_escalated, safety_recall, merged, len(gold), errors)


def _prf(gold: list[str], pred: list[str], label: str) -> dict[str, float]:
    tp = sum(g == label and p == label for g, p in zip(gold, pred))
    fp = sum(g != label and p == label for g, p in zip(gold, pred))
    fn = sum(g == label and p != label for g, p in zip(gold, pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def format_report(report: Report) -> str:
    lines = [f"{'label':<14}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
    for label, v in report.per_label.items():
        lines.append(f"{label:<14}{v['precision']:>10.3f}{v['recall']:>8.3f}{v['f1']:>8.3f}{int(v['support']):>9}")
    lines += [
        "",
        f"macro-F1 (labels present): {report.macro_f1:.3f}",
        f"macro-F1, clarification+context merged: {report.merged_macro_f1:.3f}",
        f"escalate-vs-proceed accuracy: {report.escalate_accuracy:.3f}",
        f"none escalated: {_pct(report.none_escalated)}",
        f"safety recall: {_fmt(report.safety_recall)}",
        f"items: {report.total}",
        "",
        "confusion (rows = label, columns = predicted):",
    ]
    cols = list(report.confusion)
    short = [c[:5] for c in cols]
    lines.append(f"{'':<14}" + "".join(f"{c:>7}" for c in short))
    for g in cols:
        lines.append(f"{g:<14}" + "".join(f"{report.confusion[g][p]:>7}" for p in cols))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
