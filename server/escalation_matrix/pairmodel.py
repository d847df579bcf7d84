"""Same-issue pair model: the bundled encoder reads two requests (or two questions) as one input,
"first [SEP] second", so its attention compares the words of one with the words of the other, and a
two-class head ("different", "same") says whether they are one issue. A pair is scored in both
orders and the two probabilities averaged, so the score does not depend on which call came first.

It is a LoRA adapter and a head like the classifier (``trained/same_issue/``), served through the
same ``TrainedModel`` (ONNX Runtime, no torch). Training needs the ``train`` extra."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .sameissue import expand_abbreviations

LABELS = ["different", "same"]
SEPARATOR = " [SEP] "
# unrelated pairs drawn from the training texts and added to the shipped model's training: none
# (100 or 300 gave cross-validation figures within noise of none, and lost rewordings none finds)
UNRELATED = 0


# a year standing alone ("2019", "2019's"), not part of a date, a version or an amount
_YEAR = re.compile(r"(?<![\w.,/:$€£-])((?:19|20)\d\d)(?:'?s)?(?![\w.,:/-]*\d)")


def different_years(a: str, b: str) -> bool:
    """Both calls name a year, and not the same ones: "... records older than 2019" / "... older
    than 2022". A rewording keeps its years, and the model reads numbers poorly (it scores those
    two as one issue), so such a pair is never the same issue. Of the training pairs, one names
    different years on both sides, and it is two issues."""
    ya, yb = set(_YEAR.findall(a)), set(_YEAR.findall(b))
    return bool(ya and yb and ya != yb)


def pair_text(a: str, b: str) -> str:
    """The model's input for one order of a pair: abbreviations written out, as the server
    compares texts, and the tokenizer's separator between them."""
    return f"{expand_abbreviations(a)}{SEPARATOR}{expand_abbreviations(b)}"


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


def examples(pairs: Sequence[Pair]) -> list[Any]:
    """Training examples: each pair in both orders."""
    from .finetune import Example

    return [Example(pair_text(x, y), LABELS[int(p.same)], "pairs") for p in pairs for x, y in ((p.a, p.b), (p.b, p.a))]


def unrelated(pairs: Sequence[Pair], count: int, seed: int = 13) -> list[Pair]:
    """``count`` pairs of different issues by construction: two training texts drawn at random
    from pairs that share no text, directly or through other pairs. The labelled pairs are mostly
    near misses (the same words, another issue); without these the model has seen few requests
    that have nothing in common, and may score such a pair as one issue."""
    parent: dict[str, str] = {}

    def root(text: str) -> str:
        parent.setdefault(text, text)
        while parent[text] != text:
            parent[text] = parent[parent[text]]
            text = parent[text]
        return text

    for p in pairs:
        parent[root(p.a)] = root(p.b)
    texts = sorted(parent)
    if len({root(t) for t in texts}) < 2:
        return []
    rng = random.Random(seed)
    drawn: list[Pair] = []
    while len(drawn) < count:
        a, b = rng.sample(texts, 2)
        if root(a) != root(b):
            drawn.append(Pair(a, b, False))
    return drawn


def train(pairs: Sequence[Pair], base_model: str, config: Any = None,
          progress: Callable[[int, int, float], None] | None = None, unrelated_pairs: int = UNRELATED) -> Any:
    """Fine-tune the pair model (``finetune.train`` with the two pair labels) on ``pairs`` and
    ``unrelated_pairs`` pairs drawn from their texts (``unrelated``)."""
    from . import finetune

    config = config or default_config()
    found = examples([*pairs, *unrelated(pairs, unrelated_pairs, config.seed)])
    random.Random(13).shuffle(found)
    return finetune.train(found, base_model, config, progress, labels=LABELS)


def default_config() -> Any:
    """The shipped pair model's hyper-parameters (its manifest.json records them)."""
    from .finetune import TrainConfig

    return TrainConfig(epochs=3, batch_size=16, lora_r=16, lora_alpha=32, lr=1e-3, head_lr=5e-3,
                       frozen_layers=2, max_length=160)


def checked(manifest: Any, folder: Path) -> float:
    """The threshold of a pair model folder's (already verified) manifest; a folder that holds
    another model (other labels) is an error."""
    from .errors import PolicyError

    if manifest.labels != LABELS:
        raise PolicyError(str(folder / "manifest.json"), "labels", f"a same-issue pair model has labels {LABELS}, "
                          f"not {manifest.labels}; retrain it with benchmarks/train_same_issue_cross.py --save")
    return float(manifest.decision.get("same", 0.5))


class PairModel:
    """Scores pairs with a trained pair model folder; ``threshold`` (the probability of "same" at
    or above which a pair is one issue) comes from its manifest unless given."""

    def __init__(self, folder: Path, base_model: str, backend: str = "onnx", cache: Path | None = None,
                 threshold: float | None = None):
        from .trained import TrainedModel

        self.model = TrainedModel(folder, base_model, backend, cache, with_base=False)  # verifies the files
        shipped = checked(self.model.manifest, folder)
        self.threshold = shipped if threshold is None else float(threshold)

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(same issue) per pair, the mean of its two orders; 0 for a pair that names different
        years (``different_years``)."""
        if not pairs:
            return np.zeros(0, np.float32)
        texts = [pair_text(a, b) for a, b in pairs] + [pair_text(b, a) for a, b in pairs]
        p = self.model.probabilities(self.model.encode(texts))[:, LABELS.index("same")]
        both: np.ndarray = (p[: len(pairs)] + p[len(pairs):]) / 2
        both[[different_years(a, b) for a, b in pairs]] = 0.0
        return both
