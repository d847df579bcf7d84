"""Turn request vectors into per-type scores. Three methods, chosen in classifier.yaml:
knn (mean of the k nearest exemplars of each type), centroid (cosine to each type's mean
vector) and linear (a softmax-regression head trained on the exemplar vectors)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Scorer(Protocol):
    def scores(self, queries: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        """(n, d) normalised vectors -> (n, T) scores, one column per type. ``sims`` (n, N) are
        the cosine similarities to the exemplars when the caller already has them."""


class KnnScorer:
    """Per type, a weighted mean of the k most similar exemplars (nearest first). Weights that
    favour the nearest let one exact exemplar count without letting a single outlier decide."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, n_types: int, k: int,
                 weights: list[float] | None = None):
        self.vectors, self.labels, self.k = vectors, labels, k
        self.weights = np.asarray(weights or [1.0] * k, dtype=np.float32)
        self.groups = [np.flatnonzero(labels == t) for t in range(n_types)]

    def scores(self, queries: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        if sims is None:
            sims = queries @ self.vectors.T
        out = np.full((queries.shape[0], len(self.groups)), -1.0, dtype=np.float32)
        for t, idx in enumerate(self.groups):
            if idx.size == 0:
                continue
            k = min(self.k, idx.size)
            top = -np.sort(-np.partition(sims[:, idx], idx.size - k, axis=1)[:, idx.size - k :], axis=1)
            w = self.weights[:k]
            out[:, t] = top @ w / w.sum()
        return out


class CentroidScorer:
    def __init__(self, vectors: np.ndarray, labels: np.ndarray, n_types: int):
        centroids = np.zeros((n_types, vectors.shape[1]), dtype=np.float32)
        for t in range(n_types):
            idx = labels == t
            if idx.any():
                c = vectors[idx].mean(axis=0)
                centroids[t] = c / (np.linalg.norm(c) or 1.0)
        self.centroids = centroids

    def scores(self, queries: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        return queries @ self.centroids.T


class LinearScorer:
    """Multinomial logistic regression with balanced class weights, trained by full-batch
    gradient descent (a few hundred steps on a few thousand rows: well under a second)."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, n_types: int,
                 l2: float = 1e-3, steps: int = 400, lr: float = 2.0, scale: float = 10.0):
        self.scale = scale
        x = vectors * scale
        n, d = x.shape
        y = np.zeros((n, n_types), dtype=np.float32)
        y[np.arange(n), labels] = 1.0
        counts = np.maximum(y.sum(axis=0), 1.0)
        weights = (n / (n_types * counts))[labels][:, None]
        w = np.zeros((d, n_types), dtype=np.float32)
        b = np.zeros(n_types, dtype=np.float32)
        for _ in range(steps):
            p = _softmax(x @ w + b)
            g = (p - y) * weights / n
            w -= lr * (x.T @ g + l2 * w)
            b -= lr * g.sum(axis=0)
        self.w, self.b = w, b

    def scores(self, queries: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        return _softmax(queries * self.scale @ self.w + self.b)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probabilities


def confidence(scores: np.ndarray, chosen: int, method: str) -> float:
    """Probabilities for linear; a softmax over cosine scores (temperature 0.05) otherwise."""
    if method == "linear":
        return float(scores[chosen])
    z = scores / 0.05
    p = np.exp(z - z.max())
    return float(p[chosen] / p.sum())
