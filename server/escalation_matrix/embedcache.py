"""A per-process front for an embedder, used by the server: it memoises recent texts (the guard
embeds the same text for classification and for its same-issue check, and agents repeat
themselves) and batches concurrent calls, so eight requests arriving together cost one model
pass instead of eight queued ones."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .embedder import Embedder


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
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    def __getattr__(self, name: str) -> object:
        # the fine-tuned model's head and manifest stay reachable through the wrapper
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

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
        """Queue the texts and sleep until the encoder thread has encoded them, together with
        whatever else was queued meanwhile (no polling: waiters wake only when their batch is done)."""
        job = _Job(texts)
        with self._wake:
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="embed-batcher", daemon=True)
                self._worker.start()
            self._wake.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.vectors is not None
        return job.vectors

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
            self._run_queue()

    def _run_queue(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            vectors = self.inner.encode([t for job in batch for t in job.texts])
        except Exception:  # noqa: BLE001 - one caller's bad text must not fail the others: encode each job alone
            for job in batch:
                try:
                    job.vectors = self.inner.encode(job.texts)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    job.error = exc
                job.done.set()
            return
        except BaseException as exc:  # the process is stopping: nobody may wait forever
            for job in batch:
                job.error = exc
                job.done.set()
            raise
        start = 0
        for job in batch:
            job.vectors = vectors[start : start + len(job.texts)]
            start += len(job.texts)
            job.done.set()
