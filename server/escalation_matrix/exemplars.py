"""Exemplar utterances per type (embeddings/*.yaml): what each type of request sounds like."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from .errors import PolicyError
from .models import EscalationType
from .policy import MatrixFile
from .strict import Strict
from .yamlfile import load_model


class ExemplarFile(Strict):
    type: EscalationType = Field(description="Type these utterances exemplify (none = must proceed).")
    trigger: str = Field(description="Trigger of that type in matrix.yaml.")
    exemplars: list[str] = Field(min_length=1, description="Utterances, one per item.")

    @field_validator("exemplars")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        for i, text in enumerate(value):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"item {i} is empty; write an utterance or remove the item")
        return [text.strip() for text in value]


@dataclass(frozen=True)
class Exemplar:
    type: EscalationType
    trigger: str
    text: str
    file: str


def load_exemplars(folder: Path, matrix: MatrixFile) -> list[Exemplar]:
    """Load and cross-check every exemplar file; every type but pattern needs exemplars."""
    if not folder.is_dir():
        raise PolicyError(str(folder), "", "exemplar folder not found; pass an existing folder")
    problems: list[tuple[str, str, str]] = []
    exemplars: list[Exemplar] = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            data = load_model(path, ExemplarFile)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        triggers = matrix.types[data.type].triggers
        if data.trigger not in triggers:
            problems.append((str(path), "trigger",
                             f"{data.trigger!r} is not a trigger of {data.type.value}; use one of {sorted(triggers)}"))
            continue
        exemplars.extend(Exemplar(data.type, data.trigger, text, path.name) for text in data.exemplars)
    covered = {e.type for e in exemplars}
    for etype in EscalationType:
        if etype is not EscalationType.pattern and etype not in covered and not problems:
            problems.append((str(folder), "", f"no exemplars for type {etype.value!r}; add a file with type: {etype.value}"))
    seen: dict[str, Exemplar] = {}
    for ex in exemplars:
        key = ex.text.casefold()
        if key in seen and seen[key].type is not ex.type:
            other = seen[key]
            problems.append((str(folder / ex.file), "exemplars",
                             f"{ex.text!r} is also a {other.type.value} exemplar in {other.file}; keep one"))
        seen.setdefault(key, ex)
    if problems:
        raise PolicyError.collect(problems)
    return exemplars


def content_hash(exemplars: list[Exemplar]) -> str:
    digest = hashlib.sha256()
    for ex in exemplars:
        digest.update(ex.text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]
