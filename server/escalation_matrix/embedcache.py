"""A per-process front for an embedder, used by the server: it memoises recent texts (the guard
embeds the same text for classification and for its same-issue check, and agents repeat
themselves) and batches concurrent calls, so eight requests arriving together cost one model
pass instead of eight queued ones."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .embedder import Embedder

POLL_S = 0.002


class _Job:
    def __init__(self, texts: list[str]):
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class CachingEmbedder:
    """Wraps any embedder; same ``name`` (so exemplar caches stay valid), same vectors."""

    def __init__(self, inner: Embedder, size: int = 4096):
        self.inner = inner
        self.name = inner.name
        self.size = size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._runner = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.inner.encode(texts)
        with self._lock:
            found = {t: self._memo[t] for t in texts if t in self._memo}
            for t in found:
                self._memo.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = self._batched(missing)
            with self._lock:
                for t, v in zip(missing, vectors):
                    found[t] = v
                    self._memo[t] = v
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _batched(self, texts: list[str]) -> np.ndarray:
        """Queue the texts; whichever caller holds the runner encodes everything queued so far."""
        job = _Job(texts)
        with self._lock:
            self._queue.append(job)
        while not job.done.is_set():
            if self._runner.acquire(blocking=False):
                try:
                    self._run_queue()
                finally:
                    self._runner.release()
            else:
                job.done.wait(POLL_S)
        if job.error is not None:
            raise job.error
        assert job.vectors is not None
        return job.vectors

    def _run_queue(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            vectors = self.inner.encode([t for job in batch for t in job.texts])
        except BaseException as exc:  # every waiting caller gets the same error
            for job in batch:
                job.error = exc
                job.done.set()
            return
        start = 0
        for job in batch:
            job.vectors = vectors[start : start + len(job.texts)]
            start += len(job.texts)
            job.done.set()
