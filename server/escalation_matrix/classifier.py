"""Rules plus embeddings: classify a request into an escalation type, severity and phrase."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol

import numpy as np

from .embedcache import exemplar_vectors
from .embedder import Embedder, get_embedder
from .errors import InputError
from .loader import Policy
from .messages import escalation_text
from .models import Classification, EscalationType, ExemplarMatch, RuleMatch, Severity, context_dict
from .paths import cache_dir
from .paths import default_dir
from .policy import ClassifierFile, TrainedDecision
from .rules import RuleEngine, deciding, escalating
from .sameissue import expand_abbreviations
from .trained import ProbabilityModel, TrainedModel, is_probability_model
from .scoring import CentroidScorer, KnnScorer, LinearScorer, Scorer, confidence

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .pairmodel import PairModel

TYPES: list[EscalationType] = [t for t in EscalationType if t is not EscalationType.pattern]
NONE = TYPES.index(EscalationType.none)
SAFETY = TYPES.index(EscalationType.safety)
RULE_CONFIDENCE = 0.95
# Per-type additions to the thresholds (margins) from the adaptive escalation target: positive
# escalates that type less. Safety's threshold is never offset (decide_trained checks it first).
Offsets = dict[EscalationType, float]


class RequestClassifier(Protocol):
    """What the conversation guard asks of a classifier: a ``Classifier``, or a stand-in that loads
    one in the background and waits for it (``warmup.BackgroundClassifier``)."""

    @property
    def embedder(self) -> Embedder: ...

    @property
    def settings(self) -> ClassifierFile: ...

    def classify(self, request: str, context: dict[str, Any] | None = None,
                 offsets: Offsets | None = None) -> Classification: ...

    def classify_encoded(self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None,
                         offsets: Offsets | None = None) -> tuple[list[Classification], np.ndarray]: ...


@dataclass(frozen=True)
class Evidence:
    """What the decision reads for one request: exemplar similarities, per-type scores, the rules
    that matched and the nearest exemplar added since training."""

    sims: np.ndarray
    scores: np.ndarray
    rules: list[RuleMatch]
    new: tuple[EscalationType, float] | None


@dataclass(frozen=True)
class Verdict:
    """The type decision, before phrases are rendered."""

    type: EscalationType
    decided_by: str
    rules: list[RuleMatch]


def decide(
    scores: np.ndarray, rules: list[RuleMatch], settings: ClassifierFile, order: list[EscalationType],
    thresholds: dict[EscalationType, float] | None = None, nearest: tuple[EscalationType, float] | None = None,
    offsets: Offsets | None = None,
) -> Verdict:
    """The decision tree. Escalating rules decide first (safety before all, then the tree order).
    A near-copy of an exemplar (``nearest`` similarity >= exact_similarity) takes its type. Otherwise each type's lead over the 'none' score is compared with its threshold: safety is
    checked first, then a proceed rule (minor preference) wins, then the type that clears its
    threshold by the most; near-ties follow the decision-tree order. Among escalating rules, the
    highest priority decides (``rules.deciding``)."""
    esc = deciding(rules)
    if esc:
        ranked = sorted(esc, key=lambda m: _rank(m.type, order))
        return Verdict(ranked[0].type, "rule", rules)
    if nearest and nearest[1] >= settings.exact_similarity:  # a near-copy of an exemplar
        return Verdict(nearest[0], "embedding", rules)
    limits = dict(thresholds if thresholds is not None else settings.thresholds)
    for etype, offset in (offsets or {}).items():  # the adaptive target's per-type offsets
        limits[etype] = limits.get(etype, settings.default_threshold) + offset
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


def decide_trained(
    probs: np.ndarray, rules: list[RuleMatch], decision: TrainedDecision, order: list[EscalationType],
    new_exemplar: tuple[EscalationType, float] | None = None, offsets: Offsets | None = None,
) -> Verdict:
    """The decision on the fine-tuned model's calibrated probabilities (columns follow ``TYPES``).

    Safety first: a safety rule, then P(safety) at its recall-first threshold. Then the other
    escalating rules (structured context, the conflict detector, text rules kept for their
    precision), in the decision-tree order. Then an exemplar added since the model was trained,
    when it is close enough, takes effect without retraining. A minor-preference rule proceeds.
    Otherwise the type whose probability beats P(none) by its margin the most escalates. Among
    escalating rules, the highest priority decides (``rules.deciding``)."""
    if any(m.type is EscalationType.safety for m in escalating(rules)):
        return Verdict(EscalationType.safety, "rule", rules)
    if probs[SAFETY] >= decision.safety:
        return Verdict(EscalationType.safety, "model", rules)
    esc = deciding(rules)
    if esc:
        ranked = sorted(esc, key=lambda m: _rank(m.type, order))
        return Verdict(ranked[0].type, "rule", rules)
    if new_exemplar and new_exemplar[1] >= decision.new_exemplar_similarity:
        return Verdict(new_exemplar[0], "exemplar", rules)
    if rules:  # only proceed rules matched: a minor preference
        return Verdict(EscalationType.none, "rule", rules)
    excess = {
        etype: float(probs[i] - probs[NONE]) - decision.margin_for(etype) - (offsets or {}).get(etype, 0.0)
        for i, etype in enumerate(TYPES)
        if etype not in (EscalationType.none, EscalationType.safety)
    }
    best = max(excess, key=lambda t: (excess[t], -_rank(t, order)))
    if excess[best] < 0:
        return Verdict(EscalationType.none, "model", rules)
    return Verdict(best, "model", rules)


def _rank(etype: EscalationType, order: list[EscalationType]) -> int:
    return order.index(etype) if etype in order else len(order)


class Classifier:
    """Holds the policy, the embedder and the exemplar vectors; ``classify`` is read-only and
    safe to call from many threads."""

    def __init__(self, policy: Policy, embedder: Embedder | None = None, cache: Path | None = None):
        _single_threaded_blas()
        self.policy = policy
        self.settings = policy.classifier
        # the fine-tuned model, or a wrapper of it (anything with ``probabilities``); an explicit
        # plain embedder (the fast test embedder) scores by nearest exemplars instead
        self.model: ProbabilityModel | None = None
        if uses_trained(self.settings):
            if embedder is None:
                embedder = load_trained(self.settings)
            if is_probability_model(embedder):
                self.model = embedder
        self.embedder = embedder or get_embedder(self.settings.model, self.settings.encoder)
        exemplars = policy.exemplars
        self.exemplars = exemplars
        # per-text store: only exemplars added or edited since the last run are encoded
        every = [e.text for e in exemplars]
        self.vectors = exemplar_vectors(self.embedder, every, cache or cache_dir())
        self.labels = np.array([TYPES.index(e.type) for e in exemplars])
        # exemplars the shipped model was not trained on: a policy author's additions, which the
        # nearest-exemplar check lets take effect before any retraining
        self.new = np.array([self.model.is_new(e.type.value, e.text) for e in exemplars] if self.model else [], bool)
        # compared on the base encoder, which recognises paraphrases; the fine-tuned one groups by type
        self.new_vectors = (
            exemplar_vectors(self.base_embedder, [e.text for e, n in zip(exemplars, self.new) if n],
                             cache or cache_dir(), keep=every)
            if self.new.any() else None
        )
        self.rules = RuleEngine(policy.rules.rules, self.settings.contradictions)
        self.scorer = self._scorer()

    def _scorer(self) -> Scorer:
        method, n = self.settings.method, len(TYPES)
        if method == "trained":
            if self.model is None:  # a test embedder without the fine-tuned head: nearest exemplars
                return KnnScorer(self.vectors, self.labels, n, self.settings.k, self.settings.weights)
            return ModelScorer(self.model)
        if method == "centroid":
            return CentroidScorer(self.vectors, self.labels, n)
        if method == "linear":
            return LinearScorer(self.vectors, self.labels, n)
        return KnnScorer(self.vectors, self.labels, n, self.settings.k, self.settings.weights)

    def classify(self, request: str, context: dict[str, Any] | None = None,
                 offsets: Offsets | None = None) -> Classification:
        return self.classify_many([request], [context], offsets)[0]

    def classify_many(
        self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None,
        offsets: Offsets | None = None,
    ) -> list[Classification]:
        return self._classify(requests, contexts, offsets)[0]

    def classify_encoded(
        self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None,
        offsets: Offsets | None = None,
    ) -> tuple[list[Classification], np.ndarray]:
        """Classifications plus the requests' general-purpose sentence vectors, for callers that
        compare requests with each other (the conversation guard). The fine-tuned encoder is
        trained to tell types apart, not to tell two requests of one type apart, so those vectors
        come from the base encoder; without a fine-tuned model they are the vectors classified,
        re-encoded only for a request with an abbreviation to write out (``similarity_vectors``)."""
        results, vectors = self._classify(requests, contexts, offsets)
        if self.model is not None:
            return results, self.similarity_vectors([r.request for r in results])
        expanded = [i for i, r in enumerate(results) if expand_abbreviations(r.request) != r.request]
        if expanded:
            vectors = vectors.copy()
            vectors[expanded] = self.similarity_vectors([results[i].request for i in expanded])
        return results, vectors

    def similarity_vectors(self, texts: list[str]) -> np.ndarray:
        """General-purpose sentence vectors (the base encoder) for comparing texts, common
        abbreviations written out first ("prod DB" -> "production database")."""
        if not texts:
            return np.zeros((0, self.vectors.shape[1]), np.float32)
        return self.base_embedder.encode([expand_abbreviations(t) for t in texts])

    @property
    def base_embedder(self) -> Embedder:
        if self.model is None:
            return self.embedder
        return getattr(self.model, "base_encoder", None) or get_embedder(self.settings.model, self.settings.encoder)

    def _classify(
        self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None,
        offsets: Offsets | None = None,
    ) -> tuple[list[Classification], np.ndarray]:
        texts = [_clean(r) for r in requests]
        ctxs = [context_dict(c) for c in (contexts or [None] * len(texts))]
        vectors = self.embedder.encode(texts) if texts else np.zeros((0, self.vectors.shape[1]), np.float32)
        sims = vectors @ self.vectors.T
        scores = self.scorer.scores(vectors, sims)
        news = self._new_exemplars(texts)
        results = [self._classification(t, s, row, c, n, offsets)
                   for t, s, row, c, n in zip(texts, sims, scores, ctxs, news)]
        return results, vectors

    def _new_exemplars(self, texts: list[str]) -> list[tuple[EscalationType, float] | None]:
        """Per request, the closest exemplar added since the model was trained, and how close."""
        if self.new_vectors is None or not texts:
            return [None] * len(texts)
        sims = self.base_embedder.encode(texts) @ self.new_vectors.T
        idx = np.flatnonzero(self.new)
        best = sims.argmax(axis=1)
        return [(self.exemplars[idx[b]].type, float(row[b])) for row, b in zip(sims, best)]

    def score(self, requests: list[str]) -> tuple[np.ndarray, list[tuple[EscalationType, float]]]:
        """Per-type scores (columns follow ``TYPES``) and the nearest exemplar of many requests."""
        vectors = self.embedder.encode([_clean(r) for r in requests])
        sims = vectors @ self.vectors.T
        top = sims.argmax(axis=1)
        nearest = [(self.exemplars[i].type, float(sims[row, i])) for row, i in enumerate(top)]
        return self.scorer.scores(vectors, sims), nearest

    def evidence(self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None) -> list[Evidence]:
        """Per request, what the decision reads, so that a replay can decide again under other
        offsets (``verdict(e.sims, e.scores, e.rules, e.new, offsets)``) without encoding again."""
        texts = [_clean(r) for r in requests]
        ctxs = [context_dict(c) for c in (contexts or [None] * len(texts))]
        vectors = self.embedder.encode(texts)
        sims = vectors @ self.vectors.T
        scores = self.scorer.scores(vectors, sims)
        news = self._new_exemplars(texts)
        return [Evidence(s, row, self.rules.match(t, c), n) for t, s, row, c, n in zip(texts, sims, scores, ctxs, news)]

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.similarity_vectors([a, b])
        return float(va @ vb)

    def verdict(self, sims: np.ndarray, scores: np.ndarray, matches: list[RuleMatch],
                new: tuple[EscalationType, float] | None = None, offsets: Offsets | None = None) -> Verdict:
        order = self.policy.matrix.order
        if self.model is not None:
            return decide_trained(scores, matches, self.settings.trained, order, new, offsets)
        top = int(np.argmax(sims))
        return decide(scores, matches, self.settings, order, nearest=(self.exemplars[top].type, float(sims[top])),
                      offsets=offsets)

    def _classification(self, text: str, sims: np.ndarray, scores: np.ndarray, ctx: dict[str, Any],
                        new: tuple[EscalationType, float] | None = None,
                        offsets: Offsets | None = None) -> Classification:
        matches = self.rules.match(text, ctx)
        verdict = self.verdict(sims, scores, matches, new, offsets)
        n = min(self.settings.explain, sims.size)
        nearest = np.argpartition(-sims, n - 1)[:n] if n else np.array([], dtype=int)
        nearest = nearest[np.argsort(-sims[nearest])]
        explained = [self._match(i, sims[i]) for i in nearest]
        trigger, severity, rule = self._trigger(verdict, sims)
        chosen = TYPES.index(verdict.type)
        conf = float(scores[chosen]) if self.model is not None else confidence(scores, chosen, self.settings.method)
        if verdict.decided_by == "rule":
            conf = max(conf, RULE_CONFIDENCE)
        elif any(m.type is verdict.type for m in matches):
            verdict = Verdict(verdict.type, "rule+embedding", matches)
        result = Classification(
            request=text, type=verdict.type, trigger=trigger, severity=severity,
            confidence=round(min(max(conf, 0.0), 1.0), 4),
            scores={t.value: round(float(s), 4) for t, s in zip(TYPES, scores)},
            rules=matches, exemplars=explained, decided_by=verdict.decided_by, rule=rule,
        )
        return self._render(result)

    def _match(self, i: int, sim: float) -> ExemplarMatch:
        ex = self.exemplars[i]
        return ExemplarMatch(type=ex.type, trigger=ex.trigger, text=ex.text, similarity=round(float(sim), 4), file=ex.file)

    def _trigger(self, verdict: Verdict, sims: np.ndarray) -> tuple[str, Severity | None, str | None]:
        """A deciding rule of the chosen type names the trigger (and is returned by name); otherwise the
        nearest exemplar of that type."""
        matrix = self.policy.matrix
        own = [m for m in deciding(verdict.rules) or verdict.rules if m.type is verdict.type]
        rule = None
        if own:
            named = max(own, key=lambda m: _severity_rank(m.severity or matrix.trigger(m.type, m.trigger).severity))
            trigger, rule = named.trigger, named.name
        else:
            idx = np.flatnonzero(self.labels == TYPES.index(verdict.type))
            trigger = self.exemplars[idx[np.argmax(sims[idx])]].trigger if idx.size else matrix.default_trigger(verdict.type)
        severity = matrix.trigger(verdict.type, trigger).severity
        forced = [m.severity for m in own if m.severity]
        if forced:
            severity = max([severity, *forced], key=_severity_rank)
        return trigger, severity, rule

    def _render(self, result: Classification) -> Classification:
        if result.type is EscalationType.none:
            default = self.policy.matrix.trigger(EscalationType.none, result.trigger).default
            return result.model_copy(update={"default": default})
        # an escalation always has a severity (``_trigger`` sets one); the matrix's is its default
        severity = result.severity or self.policy.matrix.severity(result.type, result.trigger)
        text = escalation_text(
            self.policy.matrix, self.policy.phrases, result.type, result.trigger, severity, result.request
        )
        message = self.policy.phrases.message("md", **text.variables())
        return result.model_copy(update={"phrase": text.phrase, "message": message, "options": text.options})


class ModelScorer:
    """Calibrated probabilities of the fine-tuned head, one column per type."""

    def __init__(self, model: ProbabilityModel):
        self.model = model

    def scores(self, queries: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        return self.model.probabilities(queries)


def serving_embedder(settings: ClassifierFile) -> Embedder:
    """What encodes requests for ``settings``: the fine-tuned model (method: trained) or the plain
    sentence encoder. Wrappers (batching, progress) keep the model's methods reachable."""
    return load_trained(settings) if uses_trained(settings) else get_embedder(settings.model, settings.encoder)


def uses_trained(settings: ClassifierFile) -> bool:
    """The fine-tuned model sits on the real encoder; on the fast test embedder (``model: fake``)
    requests are scored by their nearest exemplars instead."""
    return settings.method == "trained" and not settings.model.startswith("fake")


def trained_folder(settings: ClassifierFile) -> Path:
    folder = settings.trained.folder
    return default_dir("trained") if folder == "bundled" else Path(folder).expanduser()


def load_trained(settings: ClassifierFile) -> TrainedModel:
    """The fine-tuned model, shared per process like the embedders."""
    folder = trained_folder(settings)
    key = f"trained:{folder.resolve()}@{settings.encoder}"
    with _TRAINED_LOCK:
        if key not in _TRAINED:
            _TRAINED[key] = trained_model(folder, settings)
        return _TRAINED[key]


def trained_model(folder: Path, settings: ClassifierFile) -> TrainedModel:
    """The fine-tuned model in ``folder`` on the encoder ``settings`` name (building its ONNX files
    when missing); its base encoder is named as ``get_embedder`` names that encoder, so both share
    one exemplar cache."""
    from .embedder import _resolve_model

    return TrainedModel(folder, _resolve_model(settings.model), settings.encoder,
                        base_name=f"{settings.model}@{settings.encoder}")


_TRAINED: dict[str, TrainedModel] = {}
_TRAINED_LOCK = threading.Lock()
_PAIR: dict[str, "PairModel | None"] = {}


def load_pair_model(settings: ClassifierFile) -> "PairModel | None":
    """The same-issue pair model (``same_issue/`` in the trained model's folder) on the classifier's
    encoder, shared per process; None when the classifier runs without the trained model or the
    folder has none (the cosine thresholds decide then)."""
    if not uses_trained(settings):
        return None
    folder = trained_folder(settings) / "same_issue"
    # fp32 whatever the classifier's precision: its threshold sits where int8 rounding moves decisions
    backend = settings.backend
    key = f"pair:{folder.resolve()}@{backend}"
    with _TRAINED_LOCK:
        if key not in _PAIR:
            if (folder / "manifest.json").exists():
                from .embedder import _resolve_model
                from .pairmodel import PairModel

                _PAIR[key] = PairModel(folder, _resolve_model(settings.model), backend)
            else:
                log.warning("no same-issue pair model in %s; same-issue checks use the cosine thresholds", folder)
                _PAIR[key] = None
        return _PAIR[key]


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
