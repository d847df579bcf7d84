"""A small per-process memo in front of an embedder: the conversation guard embeds the same text
for classification and for its same-issue check, and a long-running server sees repeats."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .embedder import Embedder


class CachingEmbedder:
    """Wraps any embedder; same ``name`` (so exemplar caches stay valid), same vectors."""

    def __init__(self, inner: Embedder, size: int = 4096):
        self.inner = inner
        self.name = inner.name
        self.size = size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._memo[t] for t in texts if t in self._memo}
            for t in found:
                self._memo.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = self.inner.encode(missing)
            with self._lock:
                for t, v in zip(missing, vectors):
                    found[t] = v
                    self._memo[t] = v
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        if not texts:
            return self.inner.encode(texts)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
