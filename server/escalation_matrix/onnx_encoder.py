"""The sentence encoder on ONNX Runtime: the same BERT weights as the sentence-transformers path,
the same tokenizer, mean pooling and L2 normalisation, without importing torch.

No ONNX file is shipped (the weights are 90 MB). The graph is written here with ``onnx.helper``
and its weights are read from the bundled model's ``model.safetensors``, plus, for the fine-tuned
model, the LoRA delta (scale * B @ A) computed with numpy. The result is cached under the cache
folder, named by a digest of everything it was built from, and written atomically; later
processes load it directly (no ``onnx`` import). Nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import DependencyError, PolicyError

log = logging.getLogger(__name__)

# Bump when the graph below changes: cached files built by an older builder are then rebuilt.
GRAPH_VERSION = 1
OPSET = 18
BATCH = 32  # texts per model pass, as sentence-transformers does
MEMO = 4096  # base vectors kept from the last fine-tuned passes
PRECISIONS = ("fp32", "int8")


def _require(module: str, extra: str = "") -> None:
    raise DependencyError(f"{module} is not installed; run: pip install {extra or module}")


class BertConfig:
    def __init__(self, folder: Path):
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if data.get("model_type", "bert") != "bert" or data.get("position_embedding_type", "absolute") != "absolute":
            raise PolicyError(str(folder / "config.json"), "model_type",
                              "the ONNX backend runs BERT encoders only; set `backend: torch` for this model")
        self.hidden = int(data["hidden_size"])
        self.heads = int(data["num_attention_heads"])
        self.layers = int(data["num_hidden_layers"])
        self.eps = float(data.get("layer_norm_eps", 1e-12))
        if data.get("hidden_act", "gelu") != "gelu":
            raise PolicyError(str(folder / "config.json"), "hidden_act", "the ONNX backend supports gelu only; set `backend: torch`")
        st = folder / "sentence_bert_config.json"
        self.max_seq_length = int(json.loads(st.read_text(encoding="utf-8")).get("max_seq_length", 256)) if st.exists() else 256
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.exists() and not json.loads(pooling.read_text(encoding="utf-8")).get("pooling_mode_mean_tokens", True):
            raise PolicyError(str(pooling), "pooling", "the ONNX backend does mean pooling only; set `backend: torch`")


def merged_weights(folder: Path, lora: Mapping[str, np.ndarray] | None = None,
                   alpha: float = 1.0, r: int = 1) -> dict[str, np.ndarray]:
    """The base model's tensors (float32, ``model.safetensors`` names without a ``bert.`` prefix),
    with the LoRA deltas added to the adapted linear layers."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        _require("safetensors")
    path = folder / "model.safetensors"
    if not path.exists():
        raise PolicyError(str(path), "", "the ONNX backend needs the model's weights as model.safetensors; set `backend: torch`")
    weights = {k.removeprefix("bert."): v for k, v in load_file(str(path)).items()}
    if lora:
        from .trained import lora_pairs

        scale = np.float32(alpha / r)
        for module, parts in lora_pairs(lora).items():
            name = f"{module}.weight"
            if name not in weights:
                raise PolicyError("adapter.safetensors", module, "does not fit the base model; retrain the model")
            delta = (parts["B"].astype(np.float32) @ parts["A"].astype(np.float32)) * scale
            weights[name] = weights[name].astype(np.float32) + delta.astype(np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items() if v.dtype.kind == "f"}


def build_graph(weights: Mapping[str, np.ndarray], cfg: BertConfig, base: Mapping[str, np.ndarray] | None = None,
                branch_from: int = 0) -> bytes:
    """A BERT encoder + mean pooling + L2 normalisation as a serialised ONNX model.
    Inputs: input_ids, attention_mask (int64, batch x tokens). Output: embedding (batch x hidden);
    with ``base`` (the un-adapted weights) also base_embedding, the layers below ``branch_from``
    (identical in both) computed once and stored once."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        _require("onnx")

    # onnx is read without its types (follow_imports = skip): its protos are Any here
    nodes: list[Any] = []
    inits: list[Any] = []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(name: str, values: list[float], dtype: type[np.generic] = np.int64) -> str:
        return init(name, np.array(values, dtype=dtype))

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def layer_norm(x: str, prefix: str, out: str) -> str:
        g = init(f"{prefix}.weight", weights[f"{prefix}.weight"])
        b = init(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=cfg.eps)

    h, heads = cfg.hidden, cfg.heads
    d = h // heads
    # embeddings: word + (position + token type 0), then LayerNorm
    word = init("word_embeddings", weights["embeddings.word_embeddings.weight"])
    pos_type = init("position_type_embeddings", weights["embeddings.position_embeddings.weight"]
                    + weights["embeddings.token_type_embeddings.weight"][0][None, :])
    ids_shape = node("Shape", ["input_ids"], "ids_shape")
    seq = node("Slice", [ids_shape, const("one_i", [1]), const("two_i", [2])], "seq_len")
    pos = node("Slice", [pos_type, const("zero_i", [0]), seq, const("zero_axis", [0])], "pos_emb")
    emb = node("Add", [node("Gather", [word, "input_ids"], "word_emb", axis=0), pos], "emb_sum")
    x = layer_norm(emb, "embeddings.LayerNorm", "emb_out")
    # additive attention mask: 0 where attended, the most negative float where padded
    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inverted = node("Sub", [init("one_f", np.array(1.0, np.float32)), mask_f], "mask_inv")
    additive = node("Mul", [inverted, init("neg_big", np.array(np.finfo(np.float32).min, np.float32))], "mask_add")
    mask4 = node("Unsqueeze", [additive, const("axes_1_2", [1, 2])], "mask4")
    split_shape = const("split_shape", [0, 0, heads, d])
    merge_shape = const("merge_shape", [0, 0, h])
    scale = init("attn_scale", np.array(1.0 / np.sqrt(d), np.float32))
    def encoder_layer(x: str, i: int, w: Mapping[str, np.ndarray], tag: str) -> str:
        p, t = f"encoder.layer.{i}", f"{tag}l{i}"

        def lin(src: str, name: str, out: str) -> str:
            wt = init(f"{tag}{p}.{name}.weight_t", w[f"{p}.{name}.weight"].T)  # MatMul wants (in, out)
            b = init(f"{tag}{p}.{name}.bias", w[f"{p}.{name}.bias"])
            return node("Add", [node("MatMul", [src, wt], f"{out}_mm"), b], out)

        def ln(src: str, name: str, out: str) -> str:
            g = init(f"{tag}{p}.{name}.weight", w[f"{p}.{name}.weight"])
            b = init(f"{tag}{p}.{name}.bias", w[f"{p}.{name}.bias"])
            return node("LayerNormalization", [src, g, b], out, axis=-1, epsilon=cfg.eps)

        q = node("Transpose", [node("Reshape", [lin(x, "attention.self.query", f"{t}_q"), split_shape], f"{t}_q4")],
                 f"{t}_qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [lin(x, "attention.self.key", f"{t}_k"), split_shape], f"{t}_k4")],
                 f"{t}_kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [lin(x, "attention.self.value", f"{t}_v"), split_shape], f"{t}_v4")],
                 f"{t}_vt", perm=[0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"{t}_qk"), scale], f"{t}_scaled")
        probs = node("Softmax", [node("Add", [scores, mask4], f"{t}_masked")], f"{t}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{t}_ctx4")], f"{t}_ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_shape], f"{t}_ctx")
        attn = lin(ctx, "attention.output.dense", f"{t}_attn")
        x = ln(node("Add", [attn, x], f"{t}_res1"), "attention.output.LayerNorm", f"{t}_ln1")
        inter = lin(x, "intermediate.dense", f"{t}_inter")
        # exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))
        erf = node("Erf", [node("Div", [inter, sqrt2], f"{t}_gdiv")], f"{t}_erf")
        gelu = node("Mul", [node("Mul", [inter, half], f"{t}_ghalf"), node("Add", [erf, one], f"{t}_gadd")], f"{t}_gelu")
        out = lin(gelu, "output.dense", f"{t}_out")
        return ln(node("Add", [out, x], f"{t}_res2"), "output.LayerNorm", f"{t}_ln2")

    def pool(x: str, out: str) -> str:
        """Mean pooling over attended tokens, then L2 normalisation (as sentence-transformers)."""
        summed = node("ReduceSum", [node("Mul", [x, mask3], f"{out}_masked"), axis_1], f"{out}_sum", keepdims=0)
        mean = node("Div", [summed, count], f"{out}_mean")
        norm = node("Max", [node("ReduceL2", [mean, axis_last], f"{out}_norm_raw", keepdims=1), min_norm], f"{out}_norm")
        return node("Div", [mean, norm], out)

    sqrt2 = init("sqrt2", np.array(np.sqrt(2.0), np.float32))
    half = init("half", np.array(0.5, np.float32))
    one = init("one", np.array(1.0, np.float32))
    mask3 = node("Unsqueeze", [mask_f, const("axis_2", [2])], "mask3")
    axis_1, axis_last = const("axis_1", [1]), const("axis_last", [-1])
    count = node("Max", [node("ReduceSum", [mask3, axis_1], "token_count_raw", keepdims=0),
                         init("min_count", np.array(1e-9, np.float32))], "token_count")
    min_norm = init("min_norm", np.array(1e-12, np.float32))
    split = cfg.layers if base is None else branch_from
    for i in range(split):
        x = encoder_layer(x, i, weights, "")
    shared = x
    for i in range(split, cfg.layers):
        x = encoder_layer(x, i, weights, "")
    outputs = [pool(x, "embedding")]
    if base is not None:
        # the base encoder's vectors from the same pass: the layers below ``branch_from`` are shared
        x = shared
        for i in range(split, cfg.layers):
            x = encoder_layer(x, i, base, "base.")
        outputs.append(pool(x, "base_embedding"))

    graph = helper.make_graph(
        nodes, "sentence_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", h]) for name in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="escalation-matrix")
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the graph's matrix products, weights per output channel
    (ONNX Runtime's ``quantize_dynamic``): a quarter of the matrix weights' size, activations
    quantised per call. Per-channel scales keep the vectors within cosine ~0.99 of fp32, where one
    scale per tensor loses several points of accuracy."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_quiet_preprocess)  # ONNX Runtime suggests its shape pre-pass on the root logger
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            out = Path(work) / "int8.onnx"
            quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            os.replace(out, target)
    finally:
        root.removeFilter(_quiet_preprocess)


def _quiet_preprocess(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Please consider to run pre-processing")


def source_digest(folder: Path, extra: Mapping[str, str] | None = None) -> str:
    """Names the built file by everything it is built from: the builder version, the base weights
    (path, size, modification time) and, for the fine-tuned model, the adapter's digest."""
    st = (folder / "model.safetensors").stat()
    parts = {"graph": GRAPH_VERSION, "opset": OPSET, "base": str(folder.resolve()), "size": st.st_size,
             "mtime": st.st_mtime_ns, **(extra or {})}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def ensure_model(folder: Path, cache: Path, stem: str, lora: Mapping[str, np.ndarray] | None = None,
                 alpha: float = 1.0, r: int = 1, extra: Mapping[str, str] | None = None, with_base: bool = False,
                 precision: str = "fp32") -> Path:
    """The cached ONNX file for these weights, built first if missing (atomic write, so processes
    starting together never read half a file). ``with_base``: the file also gives the base
    encoder's vectors (output base_embedding) from the same pass, sharing the un-adapted layers."""
    if precision not in PRECISIONS:
        raise PolicyError("classifier.yaml", "precision", f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    int8 = {"precision": "int8"} if precision == "int8" else {}  # fp32 files keep their names
    stem = f"{stem}-int8" if int8 else stem
    digest = source_digest(folder, {**(extra or {}), "with_base": str(with_base), **int8})
    path = cache / "onnx" / f"{stem}-{digest}.onnx"
    if path.exists():
        return path
    cfg = BertConfig(folder)
    weights = merged_weights(folder, lora, alpha, r)
    base, branch_from = None, 0
    if with_base:
        base = merged_weights(folder)
        changed = [k for k in weights if not np.array_equal(weights[k], base[k])]
        layers = [int(k.split(".")[2]) for k in changed if k.startswith("encoder.layer.")]
        if len(layers) != len(changed):  # the adapter changed the embeddings: nothing to share
            raise PolicyError("adapter.safetensors", "", "adapts the embeddings; the ONNX backend adapts encoder layers only")
        branch_from = min(layers, default=cfg.layers)
    data = build_graph(weights, cfg, base, branch_from)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    if precision == "int8":
        try:
            quantize_int8(tmp, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)
    log.info("built ONNX encoder %s (%d MB)", path, path.stat().st_size // 2**20)
    for old in path.parent.glob(f"{stem}-*.onnx"):  # the same model built from older sources
        if old != path and len(old.stem) == len(stem) + 17:  # not the other precision's file (stem-int8-…)
            old.unlink(missing_ok=True)
    return path


class OnnxEncoder:
    """Tokenizer (``tokenizers``) + ONNX Runtime session; ``encode`` returns L2-normalised
    float32 mean-pooled vectors like the sentence-transformers path."""

    def __init__(self, folder: Path, model_file: Path, name: str, threads: int | None = None,
                 max_length: int | None = None, rebuild: Callable[[], Path] | None = None):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime as ort
        except ImportError:
            _require("onnxruntime")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            _require("tokenizers")
        self.name = name
        self.cfg = BertConfig(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length or self.cfg.max_seq_length)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or int(os.environ.get("ESCALATION_MATRIX_THREADS", 0) or min(os.cpu_count() or 1, 4))
        options.inter_op_num_threads = 1
        # idle worker threads sleep instead of spinning: the server shares its cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cache file (disk full, killed copy): build it again
            if rebuild is None:
                raise PolicyError(str(model_file), "", f"cannot load the ONNX encoder ({exc})") from None
            log.warning("rebuilding damaged ONNX encoder %s (%s)", model_file, exc)
            model_file.unlink(missing_ok=True)
            model_file = rebuild()
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.model_file = model_file
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()
        # base vectors computed alongside the fine-tuned ones (a file built with_base), kept for
        # the caller that asks for them next: the guard compares the request it just classified
        self._base_memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._run(texts)
        if len(vectors) > 1:
            with self._lock:
                for text, row in zip(texts, vectors[1]):
                    self._base_memo[text] = row
                    self._base_memo.move_to_end(text)
                while len(self._base_memo) > MEMO:
                    self._base_memo.popitem(last=False)
        return vectors[0]

    def base_view(self, name: str) -> "BaseView | None":
        """The base encoder's vectors from this file, or None when it was built without them."""
        return BaseView(self, name) if "base_embedding" in self.outputs else None

    def _run(self, texts: list[str]) -> list[np.ndarray]:
        out = [np.zeros((len(texts), self.cfg.hidden), np.float32) for _ in self.outputs]
        if not texts:
            return out
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
        for start in range(0, len(texts), BATCH):
            rows = order[start : start + BATCH]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for i, row in enumerate(rows):
                n = lengths[row]
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            for target, result in zip(out, self.session.run(self.outputs, {"input_ids": ids, "attention_mask": mask})):
                target[rows] = result
        return out


class BaseView:
    """The base (un-adapted) encoder served by a fine-tuned model's file: vectors of texts the
    fine-tuned model has just encoded come from that pass, others from a new one."""

    def __init__(self, encoder: OnnxEncoder, name: str):
        self.encoder = encoder
        self.name = name

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.encoder
        with enc._lock:
            found = {t: enc._base_memo[t] for t in texts if t in enc._base_memo}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            found.update(zip(missing, enc._run(missing)[1]))
        if not texts:
            return np.zeros((0, enc.cfg.hidden), np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


def base_encoder(folder: Path, name: str, cache: Path, precision: str = "fp32") -> OnnxEncoder:
    def build() -> Path:
        return ensure_model(folder, cache, "base", precision=precision)

    return OnnxEncoder(folder, build(), name, rebuild=build)
