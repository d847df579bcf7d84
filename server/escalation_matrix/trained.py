"""The shipped fine-tuned classifier: a LoRA adapter merged into the bundled encoder at load time,
a classification head, a calibration temperature and the fitted decision margins. The ONNX
backend needs onnxruntime and tokenizers (no torch); the torch backend needs torch and
sentence-transformers; neither needs peft, and nothing is downloaded."""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol, TypeGuard

import numpy as np

from .errors import DependencyError, PolicyError
from .finetune import exemplar_key, file_sha256

log = logging.getLogger(__name__)

_LORA = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])(?:\.default)?\.weight$")


@dataclass
class Manifest:
    """What the shipped model was trained on, how, and what it measured."""

    labels: list[str]
    config: dict[str, Any]
    files: dict[str, str]
    exemplar_keys: set[str]
    temperature: float = 1.0
    decision: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = folder / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PolicyError(str(path), "", f"cannot read the trained model's manifest ({exc})") from None
        return cls(
            labels=list(data["labels"]), config=dict(data["config"]), files=dict(data["files"]),
            exemplar_keys=set(data.get("exemplar_keys", [])), temperature=float(data.get("temperature", 1.0)),
            decision=dict(data.get("decision", {})), raw=data,
        )

    def verify(self, folder: Path) -> None:
        """The weight files are the ones the manifest describes."""
        for name, digest in self.files.items():
            path = folder / name
            if not path.exists():
                raise PolicyError(str(path), "", "missing; retrain with `escalation-matrix train` or restore the file")
            if file_sha256(path) != digest:
                raise PolicyError(str(path), "", "does not match manifest.json; retrain or restore the shipped files")


def lora_pairs(lora: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The adapter's tensors grouped per adapted module: {module path: {"A": ..., "B": ...}}."""
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, value in lora.items():
        m = _LORA.match(name)
        if not m:
            raise PolicyError("adapter.safetensors", name, "not a LoRA tensor name; retrain the model")
        pairs.setdefault(m["module"], {})[m["part"]] = value
    for path, parts in pairs.items():
        if "A" not in parts or "B" not in parts:
            raise PolicyError("adapter.safetensors", path, "does not fit the base model; retrain the model")
    return pairs


def merge_lora(module: Any, lora: dict[str, np.ndarray], alpha: float, r: int) -> int:
    """Add scale * B @ A to each adapted linear layer's weight; returns how many were merged."""
    import torch

    pairs = lora_pairs(lora)
    named = dict(module.named_modules())
    scale = alpha / r
    with torch.no_grad():
        for path, parts in pairs.items():
            target = named.get(path)
            if target is None or "A" not in parts or "B" not in parts:
                raise PolicyError("adapter.safetensors", path, "does not fit the base model; retrain the model")
            delta = torch.from_numpy(parts["B"].astype(np.float32) @ parts["A"].astype(np.float32)) * scale
            target.weight += delta.to(target.weight.dtype)
    return len(pairs)


class ProbabilityModel(Protocol):
    """The fine-tuned model as the classifier scores with it: a ``TrainedModel`` or a wrapper that
    forwards its methods (the caching and progress embedders)."""

    def probabilities(self, vectors: np.ndarray, temperature: float | None = None) -> np.ndarray: ...

    def is_new(self, etype: str, text: str) -> bool: ...


def is_probability_model(embedder: object) -> TypeGuard[ProbabilityModel]:
    """True for the fine-tuned model and its wrappers. ``hasattr`` follows a wrapper's
    ``__getattr__``; an ``isinstance`` check against the protocol would not on Python 3.12+."""
    return hasattr(embedder, "probabilities")


class TrainedModel:
    """Encoder (base + merged adapter) and head. ``encode`` follows the ``Embedder`` protocol, so the
    exemplar cache, the batching encoder and kNN explanations work on the fine-tuned vectors."""

    # the base encoder served with this model (ONNX backend), else None: the caller loads its own
    base_encoder: Any = None

    def __init__(self, folder: Path, base_model: str, backend: str = "torch", cache: Path | None = None,
                 base_name: str | None = None, with_base: bool = True):
        from safetensors.numpy import load_file

        self.folder = folder
        # "onnx-int8": the ONNX backend with int8 matrix weights
        self.backend, _, precision = backend.partition("-")
        self.precision = precision or "fp32"
        self.manifest = Manifest.read(folder)
        self.manifest.verify(folder)
        lora = load_file(str(folder / "adapter.safetensors"))
        head = load_file(str(folder / "head.safetensors"))
        self.head_weight = head["weight"].astype(np.float32)
        self.head_bias = head["bias"].astype(np.float32)
        self.labels = self.manifest.labels
        cfg = self.manifest.config
        alpha, r = float(cfg["lora_alpha"]), int(cfg["lora_r"])
        max_length = int(cfg.get("serve_max_length", 256))
        digest = self.manifest.files["adapter.safetensors"]
        self.name = f"trained-{digest[:12]}"
        if self.backend == "onnx":
            # the ONNX file is named by the adapter's digest, which manifest.verify has just checked
            # against adapter.safetensors: a changed adapter builds a new file, never reuses the old
            from .onnx_encoder import BertConfig, OnnxEncoder, ensure_model, lower_key, lower_layers
            from .paths import cache_dir

            base = Path(base_model)
            # the embeddings and lowest layers keep the base weights: the models of one process
            # (the classifier and the same-issue pair model) share them
            lower = lower_layers(list(lora_pairs(lora)), BertConfig(base).layers)

            def build() -> Path:
                return ensure_model(base, cache or cache_dir(), f"trained-{digest[:12]}", lora, alpha, r,
                                    extra={"adapter": digest}, with_base=with_base, precision=self.precision,
                                    lower=lower)

            self._encoder = OnnxEncoder(base, build(), f"trained-{digest[:12]}-{backend}", max_length=max_length,
                                        rebuild=build, shared_lower=lower_key(base, lower, self.precision))
            self.name = self._encoder.name
            # the base encoder's vectors (for comparing requests) come from the same files: the
            # un-adapted lower layers are shared, the base upper layers run from their states
            self.base_encoder = self._encoder.base_view(base_name or f"bundled@{backend}") if with_base else None
            return
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise DependencyError(
                f"`backend: torch` needs sentence-transformers ({exc}); run: pip install 'torch==2.13.0' "
                "'escalation-matrix[train]', or use `backend: onnx` (no torch)") from None
        try:
            self._model = SentenceTransformer(base_model, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
            raise PolicyError("classifier.yaml", "model", f"cannot load base model ({exc})") from None
        merge_lora(self._model[0].auto_model, lora, alpha, r)
        self._model.max_seq_length = max_length
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.backend == "onnx":
            return self._encoder.encode(texts)
        with self._lock:
            vectors = self._model.encode(texts, batch_size=32, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        logits: np.ndarray = vectors @ self.head_weight.T + self.head_bias
        return logits

    def probabilities(self, vectors: np.ndarray, temperature: float | None = None) -> np.ndarray:
        t = self.manifest.temperature if temperature is None else temperature
        z = self.logits(vectors) / t
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return probabilities

    def is_new(self, etype: str, text: str) -> bool:
        """True for an exemplar the shipped model was not trained on."""
        return exemplar_key(etype, text) not in self.manifest.exemplar_keys
