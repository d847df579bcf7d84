"""Labelled JSONL files: one object a line with at least ``text`` (and ``label`` for eval/fit)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .models import EscalationType

LABELS = {t.value for t in EscalationType}


@dataclass(frozen=True)
class Item:
    text: str
    label: str | None
    context: dict[str, Any] | None
    raw: dict[str, Any]


def read_jsonl(path: Path, *, labelled: bool = False) -> list[Item]:
    items: list[Item] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{path}: line {number}: each line needs a JSON object with a string 'text'")
        label = obj.get("label")
        if labelled and label not in LABELS:
            raise InputError(f"{path}: line {number}: label {label!r} is not one of {sorted(LABELS)}")
        context = obj.get("context")
        if context is not None and not isinstance(context, dict):
            raise InputError(f"{path}: line {number}: 'context' must be an object")
        items.append(Item(obj["text"], label, context, obj))
    if not items:
        raise InputError(f"{path}: no items found")
    return items


def labels(items: list[Item]) -> list[str]:
    """The labels of items read with ``labelled=True`` (where each one was checked)."""
    missing = next((i for i in items if i.label is None), None)
    if missing is not None:
        raise InputError(f"an item has no label: {missing.text[:60]!r}")
    return [i.label for i in items if i.label is not None]
