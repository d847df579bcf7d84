"""Rules plus embeddings: classify a request into an escalation type, severity and phrase."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .embedder import Embedder, cached_vectors, get_embedder
from .errors import InputError
from .exemplars import content_hash
from .loader import Policy
from .messages import escalation_text
from .models import Classification, EscalationType, ExemplarMatch, RuleMatch, Severity, context_dict
from .paths import cache_dir
from .policy import ClassifierFile
from .rules import RuleEngine, escalating
from .scoring import CentroidScorer, KnnScorer, LinearScorer, Scorer, confidence

TYPES = [t for t in EscalationType if t is not EscalationType.pattern]
NONE = TYPES.index(EscalationType.none)
SAFETY = TYPES.index(EscalationType.safety)
RULE_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Verdict:
    """The type decision, before phrases are rendered."""

    type: EscalationType
    decided_by: str
    rules: list[RuleMatch]


def decide(
    scores: np.ndarray, rules: list[RuleMatch], settings: ClassifierFile, order: list[EscalationType],
    thresholds: dict[EscalationType, float] | None = None, nearest: tuple[EscalationType, float] | None = None,
) -> Verdict:
    """The decision tree. Escalating rules decide first (safety before all, then the tree order).
    A near-copy of an exemplar (``nearest`` similarity >= exact_similarity) takes its type. Otherwise each type's lead over the 'none' score is compared with its threshold: safety is
    checked first, then a proceed rule (minor preference) wins, then the type that clears its
    threshold by the most; near-ties follow the decision-tree order."""
    esc = escalating(rules)
    if esc:
        ranked = sorted(esc, key=lambda m: _rank(m.type, order))
        return Verdict(ranked[0].type, "rule", rules)
    if nearest and nearest[1] >= settings.exact_similarity:  # a near-copy of an exemplar
        return Verdict(nearest[0], "embedding", rules)
    limits = thresholds if thresholds is not None else settings.thresholds
    lead = scores - scores[NONE]
    if lead[SAFETY] >= limits.get(EscalationType.safety, settings.default_threshold):
        return Verdict(EscalationType.safety, "embedding", rules)
    if rules:  # only proceed rules matched: a minor preference
        return Verdict(EscalationType.none, "rule", rules)
    excess = {
        etype: float(lead[i]) - limits.get(etype, settings.default_threshold)
        for i, etype in enumerate(TYPES)
        if etype not in (EscalationType.none, EscalationType.safety)
    }
    best = max(excess.values())
    if best < 0:
        return Verdict(EscalationType.none, "embedding", rules)
    tied = [t for t, e in excess.items() if best - e <= settings.tie_margin and e >= 0]
    return Verdict(min(tied, key=lambda t: _rank(t, order)), "embedding", rules)


def _rank(etype: EscalationType, order: list[EscalationType]) -> int:
    return order.index(etype) if etype in order else len(order)


class Classifier:
    """Holds the policy, the embedder and the exemplar vectors; ``classify`` is read-only and
    safe to call from many threads."""

    def __init__(self, policy: Policy, embedder: Embedder | None = None, cache: Path | None = None):
        _single_threaded_blas()
        self.policy = policy
        self.settings = policy.classifier
        self.embedder = embedder or get_embedder(self.settings.model)
        exemplars = policy.exemplars
        self.exemplars = exemplars
        self.vectors = cached_vectors(
            self.embedder, [e.text for e in exemplars], content_hash(exemplars), cache or cache_dir()
        )
        self.labels = np.array([TYPES.index(e.type) for e in exemplars])
        self.rules = RuleEngine(policy.rules.rules, self.settings.contradictions)
        self.scorer = self._scorer()

    def _scorer(self) -> Scorer:
        method, n = self.settings.method, len(TYPES)
        if method == "centroid":
            return CentroidScorer(self.vectors, self.labels, n)
        if method == "linear":
            return LinearScorer(self.vectors, self.labels, n)
        return KnnScorer(self.vectors, self.labels, n, self.settings.k, self.settings.weights)

    def classify(self, request: str, context: dict[str, Any] | None = None) -> Classification:
        return self.classify_many([request], [context])[0]

    def classify_many(
        self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None
    ) -> list[Classification]:
        return self.classify_encoded(requests, contexts)[0]

    def classify_encoded(
        self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None
    ) -> tuple[list[Classification], np.ndarray]:
        """Classifications plus the request vectors, for callers that also compare requests
        (the conversation guard), so nothing is encoded twice."""
        texts = [_clean(r) for r in requests]
        ctxs = [context_dict(c) for c in (contexts or [None] * len(texts))]
        vectors = self.embedder.encode(texts) if texts else np.zeros((0, self.vectors.shape[1]), np.float32)
        sims = vectors @ self.vectors.T
        scores = self.scorer.scores(vectors, sims)
        results = [self._classification(t, s, row, c) for t, s, row, c in zip(texts, sims, scores, ctxs)]
        return results, vectors

    def score(self, requests: list[str]) -> tuple[np.ndarray, list[tuple[EscalationType, float]]]:
        """Per-type scores (columns follow ``TYPES``) and the nearest exemplar of many requests."""
        vectors = self.embedder.encode([_clean(r) for r in requests])
        sims = vectors @ self.vectors.T
        top = sims.argmax(axis=1)
        nearest = [(self.exemplars[i].type, float(sims[row, i])) for row, i in enumerate(top)]
        return self.scorer.scores(vectors, sims), nearest

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.embedder.encode([a, b])
        return float(va @ vb)

    def _classification(self, text: str, sims: np.ndarray, scores: np.ndarray, ctx: dict[str, Any]) -> Classification:
        matches = self.rules.match(text, ctx)
        top = int(np.argmax(sims))
        verdict = decide(scores, matches, self.settings, self.policy.matrix.order,
                         nearest=(self.exemplars[top].type, float(sims[top])))
        n = min(self.settings.explain, sims.size)
        nearest = np.argpartition(-sims, n - 1)[:n] if n else np.array([], dtype=int)
        nearest = nearest[np.argsort(-sims[nearest])]
        explained = [self._match(i, sims[i]) for i in nearest]
        trigger, severity = self._trigger(verdict, sims)
        chosen = TYPES.index(verdict.type)
        conf = confidence(scores, chosen, self.settings.method)
        if verdict.decided_by == "rule":
            conf = max(conf, RULE_CONFIDENCE)
        elif any(m.type is verdict.type for m in matches):
            verdict = Verdict(verdict.type, "rule+embedding", matches)
        result = Classification(
            request=text, type=verdict.type, trigger=trigger, severity=severity,
            confidence=round(min(max(conf, 0.0), 1.0), 4),
            scores={t.value: round(float(s), 4) for t, s in zip(TYPES, scores)},
            rules=matches, exemplars=explained, decided_by=verdict.decided_by,
        )
        return self._render(result)

    def _match(self, i: int, sim: float) -> ExemplarMatch:
        ex = self.exemplars[i]
        return ExemplarMatch(type=ex.type, trigger=ex.trigger, text=ex.text, similarity=round(float(sim), 4), file=ex.file)

    def _trigger(self, verdict: Verdict, sims: np.ndarray) -> tuple[str, Severity | None]:
        """A rule of the chosen type names the trigger; otherwise the nearest exemplar of that type."""
        matrix = self.policy.matrix
        own = [m for m in verdict.rules if m.type is verdict.type]
        if own:
            trigger = max(own, key=lambda m: _severity_rank(m.severity or matrix.trigger(m.type, m.trigger).severity)).trigger
        else:
            idx = np.flatnonzero(self.labels == TYPES.index(verdict.type))
            trigger = self.exemplars[idx[np.argmax(sims[idx])]].trigger if idx.size else matrix.default_trigger(verdict.type)
        severity = matrix.trigger(verdict.type, trigger).severity
        forced = [m.severity for m in own if m.severity]
        if forced:
            severity = max([severity, *forced], key=_severity_rank)
        return trigger, severity

    def _render(self, result: Classification) -> Classification:
        if result.type is EscalationType.none:
            default = self.policy.matrix.trigger(EscalationType.none, result.trigger).default
            return result.model_copy(update={"default": default})
        text = escalation_text(
            self.policy.matrix, self.policy.phrases, result.type, result.trigger, result.severity, result.request
        )
        message = self.policy.phrases.message("md", **text.variables())
        return result.model_copy(update={"phrase": text.phrase, "message": message, "options": text.options})


def _single_threaded_blas() -> None:
    """Our matrix products are small (one request against a few thousand exemplars). With
    OpenBLAS's default pool its threads keep spinning after each product and starve torch's
    threads on a small machine: single-request latency doubled (p50 28 ms -> 14 ms, p99 116 ms ->
    22 ms with one BLAS thread on 2 cores, benchmarks/bench_classify.py)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _severity_rank(severity: Severity | None) -> int:
    return severity.rank if severity else 0


def _clean(request: Any) -> str:
    if not isinstance(request, str):
        raise InputError(f"request must be a string, got {type(request).__name__}")
    text = " ".join(request.split())
    if not text:
        raise InputError("request is empty; pass the text of the request the agent received")
    return text
