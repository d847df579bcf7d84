"""Embedding caches.

``exemplar_vectors``: the exemplar vectors on disk, one store per encoder, keyed per text (a hash
of the encoder's identity and the text). Only texts the store lacks are encoded, in batches under
a progress bar on stderr; the store is rewritten atomically with exactly the current exemplars'
entries, and the per-content files of earlier versions are removed. Adding one exemplar encodes
one text; a hot reload re-encodes only the edited exemplars.

``CachingEmbedder``: a per-process front for an embedder, used by the server: it memoises recent
texts (the guard embeds the same text for classification and for its same-issue check, and agents
repeat themselves) and batches concurrent calls, so eight requests arriving together cost one
model pass instead of eight queued ones."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .embedder import Embedder

log = logging.getLogger(__name__)

ENCODE_BATCH = 64  # texts per model call when filling the exemplar store
BAR_MINIMUM = 32  # fewer missing texts than this encode without a bar (well under a second)
PROGRESS_ENV = "ESCALATION_MATRIX_PROGRESS"  # 0: never show the bar
LEGACY_FILE = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{16}\.npy$")  # one file per exemplar content, before stores


def text_key(identity: str, text: str) -> str:
    """The store key of ``text`` encoded by the encoder named ``identity``."""
    return hashlib.sha256(f"{identity}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def store_path(folder: Path, identity: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", identity)[-60:]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]  # two names with one slug never share a store
    return folder / f"exemplars-{slug}-{digest}.npz"


def _read_store(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
        if keys.shape[0] != vectors.shape[0]:
            raise ValueError("keys and vectors differ in length")
        return {k.decode("ascii"): v for k, v in zip(keys, vectors)}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable exemplar cache %s (%s); it will be rebuilt", path, exc)
        return {}


def _write_store(path: Path, entries: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        keys = np.array(sorted(entries), dtype="S64")
        vectors = (np.stack([entries[k.decode()] for k in keys]).astype(np.float32) if len(keys)
                   else np.zeros((0, 0), np.float32))
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors)
        os.replace(tmp, path)  # atomic: concurrent servers never read half a file
    except OSError as exc:
        log.warning("cannot write exemplar cache %s: %s", path, exc)


def prune_legacy_files(folder: Path) -> list[Path]:
    """Remove the one-file-per-exemplar-content caches of earlier versions (never read any more)."""
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.is_file() and LEGACY_FILE.match(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def _bar(total: int, label: str) -> Any:
    from tqdm import tqdm

    off = total < BAR_MINIMUM or os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "false", "no", "off")
    return tqdm(total=total, desc=label, unit="text", file=sys.stderr, disable=off, dynamic_ncols=True,
                mininterval=0.5)


def encode_in_batches(embedder: Embedder, texts: list[str], label: str = "encoding exemplars") -> np.ndarray:
    """``texts`` through ``embedder`` in batches of ``ENCODE_BATCH`` under a progress bar on stderr."""
    if getattr(embedder, "quiet", None):
        # the command line's progress wrapper: it slices the texts under the command line's own bar,
        # which follows --progress / --no-progress
        return np.asarray(embedder.encode(texts), dtype=np.float32)
    parts = []
    with _bar(len(texts), label) as bar:
        for start in range(0, len(texts), ENCODE_BATCH):
            parts.append(np.asarray(embedder.encode(texts[start : start + ENCODE_BATCH]), dtype=np.float32))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


_store_locks: dict[Path, threading.Lock] = {}
_store_locks_guard = threading.Lock()


def exemplar_vectors(embedder: Embedder, texts: list[str], folder: Path,
                     keep: Iterable[str] | None = None) -> np.ndarray:
    """The vectors of ``texts`` by ``embedder``, from the store in ``folder``; only the texts the
    store lacks are encoded. The store is rewritten holding ``texts`` and ``keep`` (the other
    current exemplars this encoder may be asked for), so removed or edited exemplars drop out."""
    identity = embedder.name
    path = store_path(folder, identity)
    with _store_locks_guard:
        lock = _store_locks.setdefault(path, threading.Lock())
    with lock:
        entries = _read_store(path)
        keys = [text_key(identity, t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in entries))
        if missing:
            vectors = encode_in_batches(embedder, missing, f"encoding {len(missing)} exemplar(s)")
            dims = {v.shape[-1] for v in entries.values()}
            if dims and dims != {vectors.shape[1]}:  # the encoder changed under the same name: start over
                entries = {}
            entries.update({text_key(identity, t): v for t, v in zip(missing, vectors)})
            log.info("exemplar cache %s: encoded %d of %d texts", path.name, len(missing), len(texts))
        wanted = set(keys) | {text_key(identity, t) for t in (keep or ())}
        kept = {k: v for k, v in entries.items() if k in wanted}
        if missing or len(kept) != len(entries) or not path.exists():
            _write_store(path, kept)
        prune_legacy_files(folder)
    if not texts:
        dim = next((v.shape[-1] for v in entries.values()), 0)
        return np.zeros((0, dim), np.float32)
    return np.stack([entries[k] for k in keys]).astype(np.float32, copy=False)


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
