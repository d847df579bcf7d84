"""Fine-tune the bundled sentence encoder with a LoRA adapter and a classification head over the
nine-type label set (``none`` included), on a labelled JSONL file plus the shipped exemplars.

Training needs torch, transformers and peft (``pip install 'escalation-matrix[train]'``); serving
does not: the adapter is merged into the encoder's weights at load time (``trained.py``)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .errors import DependencyError
from .exemplars import Exemplar
from .models import EscalationType

LABELS = [t.value for t in EscalationType if t is not EscalationType.pattern]


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # "train" or the exemplar file


@dataclass
class TrainConfig:
    """Hyper-parameters. The defaults are the shipped model's."""

    epochs: int = 5
    batch_size: int = 32
    max_length: int = 128
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lr: float = 1e-3
    head_lr: float = 5e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    # Class weights are (mean count / count) ** power: 0 ignores imbalance, 1 fully balances.
    # 0: the recall-first safety threshold handles the imbalance; re-weighting inflated P(safety)
    # on safe requests with sensitive words (more of them escalated at the same safety recall).
    class_weight_power: float = 0.0
    scale: float = 20.0  # logits = scale * cosine(embedding, class weight) + bias
    seed: int = 13
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    # Layers below this index stay frozen: their outputs are computed once per text, and only the
    # layers above are adapted and back-propagated (about twice as fast on a CPU).
    frozen_layers: int = 3
    max_steps: int | None = None  # for tests: stop early


@dataclass
class TrainedWeights:
    """What training produces: LoRA tensors (peft's names), the head, and the config."""

    lora: dict[str, np.ndarray]
    head_weight: np.ndarray  # (types, dim)
    head_bias: np.ndarray  # (types,)
    config: TrainConfig
    labels: list[str]
    seconds: float


def examples_from(items: Iterable[tuple[str, str]], exemplars: Iterable[Exemplar]) -> list[Example]:
    """Labelled requests plus exemplar utterances, de-duplicated on case-folded text (a labelled
    request wins over an exemplar of the same text)."""
    out: list[Example] = []
    seen: set[str] = set()
    for text, label in items:
        key = " ".join(text.split()).casefold()
        if label in LABELS and key and key not in seen:
            seen.add(key)
            out.append(Example(" ".join(text.split()), label, "train"))
    for ex in exemplars:
        key = " ".join(ex.text.split()).casefold()
        if key not in seen:
            seen.add(key)
            out.append(Example(" ".join(ex.text.split()), ex.type.value, ex.file))
    return out


# torch, peft and transformers are read without their types (pyproject's follow_imports = skip):
# their modules, models and tensors are Any below.
def _imports() -> tuple[Any, Any, Any, Any]:
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"training needs torch, sentence-transformers and peft ({exc}); run: "
            "pip install 'torch==2.13.0' && pip install -e '.[train]'"
        ) from None
    return torch, LoraConfig, get_peft_model, SentenceTransformer


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths: padding costs most of the time on long texts."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 20
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
    rng.shuffle(batches)
    return batches


def train(
    examples: list[Example], base_model: str, config: TrainConfig | None = None,
    progress: Callable[[int, int, float], None] | None = None, labels: list[str] | None = None,
) -> TrainedWeights:
    """Fine-tune on CPU with a fixed seed. ``progress(step, total, loss)`` is called per step.
    ``labels``: the head's classes (default the nine escalation types; the same-issue pair model
    has its own two)."""
    names = list(labels or LABELS)
    torch, LoraConfig, get_peft_model, SentenceTransformer = _imports()
    config = config or TrainConfig()
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    st = SentenceTransformer(base_model, device="cpu")
    bert = st[0].auto_model
    tokenizer = st.tokenizer
    layers = bert.config.num_hidden_layers
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none",
                      layers_to_transform=list(range(config.frozen_layers, layers)))
    model = get_peft_model(bert, lora)
    dim = bert.config.hidden_size
    head = torch.nn.Linear(dim, len(names))
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.zeros_(head.bias)

    targets = torch.tensor([names.index(e.label) for e in examples])
    counts = np.bincount(targets.numpy(), minlength=len(names)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(names))
    weights[present] = (counts[present].mean() / counts[present]) ** config.class_weight_power
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))

    encoded = tokenizer([e.text for e in examples], truncation=True, max_length=config.max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    frozen = _frozen_states(torch, bert, tokenizer, encoded, lengths, config.frozen_layers)
    top = list(bert.encoder.layer)[config.frozen_layers:]
    rng = random.Random(config.seed)
    per_epoch = math.ceil(len(examples) / config.batch_size)
    total = per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    lora_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": lora_params, "lr": config.lr}, {"params": head.parameters(), "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    scheduler = warmup_schedule(torch, optimizer, total, config.warmup)
    model.train()
    step = 0
    for _ in range(config.epochs):
        for batch in _batches(lengths, config.batch_size, rng):
            if step >= total:
                break
            hidden, mask = _pad(torch, [frozen[i] for i in batch])
            extended = _mask(torch, bert, hidden, mask)
            for layer in top:
                hidden = layer(hidden, extended)
            emb = _pool(torch, hidden, mask)
            logits = config.scale * emb @ torch.nn.functional.normalize(head.weight, dim=1).T + head.bias
            loss = loss_fn(logits, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + list(head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if progress:
                progress(step, total, float(loss.detach()))
    lora_state = {name: p.detach().cpu().numpy().copy()
                  for name, p in model.named_parameters() if "lora_" in name}
    w = torch.nn.functional.normalize(head.weight.detach(), dim=1) * config.scale
    return TrainedWeights(lora_state, w.numpy().copy(), head.bias.detach().numpy().copy(), config, names,
                          time.perf_counter() - started)


def warmup_schedule(torch: Any, optimizer: Any, total: int, warmup: float) -> Any:
    """Linear warm-up over the first ``warmup`` share of ``total`` steps, then linear decay to 0."""
    warm = max(1, int(total * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))


def _frozen_states(torch: Any, bert: Any, tokenizer: Any, encoded: Any, lengths: list[int],
                   frozen_layers: int) -> list[Any]:
    """The input of the first adapted layer, per text (unpadded), computed once without gradients."""
    out: list[Any] = [None] * len(lengths)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    bert.eval()
    with torch.no_grad():
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            features = tokenizer.pad({"input_ids": [encoded["input_ids"][i] for i in idx],
                                      "attention_mask": [encoded["attention_mask"][i] for i in idx]},
                                     return_tensors="pt")
            states = bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                          output_hidden_states=True).hidden_states[frozen_layers]
            for row, i in enumerate(idx):
                out[i] = states[row, : lengths[i]].clone()
    return out


def _pad(torch: Any, states: list[Any]) -> tuple[Any, Any]:
    longest = max(s.shape[0] for s in states)
    hidden = torch.zeros(len(states), longest, states[0].shape[1])
    mask = torch.zeros(len(states), longest, dtype=torch.long)
    for row, s in enumerate(states):
        hidden[row, : s.shape[0]] = s
        mask[row, : s.shape[0]] = 1
    return hidden, mask


def _mask(torch: Any, bert: Any, hidden: Any, mask: Any) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=bert.config, inputs_embeds=hidden, attention_mask=mask)


def _pool(torch: Any, hidden: Any, mask: Any) -> Any:
    """Mean pooling over real tokens, then L2 normalisation: the bundled model's own pooling."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed, dim=1)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exemplar_key(etype: str, text: str) -> str:
    """A short stable key per exemplar, so the manifest can tell which exemplars are new."""
    return hashlib.sha256(f"{etype}\0{' '.join(text.split()).casefold()}".encode()).hexdigest()[:16]


def save(weights: TrainedWeights, folder: Path, manifest: dict[str, Any]) -> None:
    """Write the adapter and head as safetensors (fp16 LoRA, fp32 head) and the manifest."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float16) for k, v in sorted(weights.lora.items())}, str(folder / "adapter.safetensors"))
    save_file({"weight": weights.head_weight.astype(np.float32), "bias": weights.head_bias.astype(np.float32)},
              str(folder / "head.safetensors"))
    config = asdict(weights.config)
    manifest = {
        **manifest,
        "labels": weights.labels,
        "config": config,
        "seed": weights.config.seed,
        "train_seconds": round(weights.seconds, 1),
        "files": {name: file_sha256(folder / name) for name in ("adapter.safetensors", "head.safetensors")},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
