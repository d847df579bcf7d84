"""The sentence encoder on ONNX Runtime: the same BERT weights as the sentence-transformers path,
the same tokenizer, mean pooling and L2 normalisation, without importing torch.

No ONNX file is shipped (the weights are 90 MB). The graph is written here with ``onnx.helper``
and its weights are read from the bundled model's ``model.safetensors``, plus, for the fine-tuned
model, the LoRA delta (scale * B @ A) computed with numpy. The result is cached under the cache
folder, named by a digest of everything it was built from, and written atomically; later
processes load it directly (no ``onnx`` import). Nothing is downloaded."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import DependencyError, PolicyError

log = logging.getLogger(__name__)

# Bump when the graph below changes: cached files built by an older builder are then rebuilt.
GRAPH_VERSION = 3
OPSET = 18
BATCH = 32  # texts per model pass, as sentence-transformers does
MEMO = 4096  # base vectors kept from the last fine-tuned passes
HIDDEN_MEMO_BYTES = 32 * 2**20  # hidden states kept from them (a 20-token request: 30 KB)
PRECISIONS = ("fp32", "int8")

# A fine-tuned model's lower file holds the token embeddings and at most this many layers, which it
# must leave at the base weights: the classifier (adapted from layer 3 up) and the same-issue pair
# model (from layer 2 up) then have identical lower files, and one session, shared through the
# table below, serves both, so the embeddings (47 MB) and those layers are in memory once.
SHARED_LAYERS = 2
# Lower-layer sessions of this process, keyed by what the file is built from (``lower_key``).
_LOWER_SESSIONS: "weakref.WeakValueDictionary[tuple[Any, ...], Any]" = weakref.WeakValueDictionary()
_LOWER_LOCK = threading.Lock()


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


def build_graph(weights: Mapping[str, np.ndarray], cfg: BertConfig, first: int = 0, last: int | None = None,
                output: str = "embedding", fused: bool = True) -> bytes:
    """Layers ``first`` to ``last`` (exclusive; default all) of a BERT encoder as a serialised
    ONNX model.

    With ``first`` 0 the inputs are input_ids and attention_mask (int64, batch x tokens) and the
    embeddings come first; with ``first`` > 0 the inputs are ``hidden`` (float, batch x tokens x
    hidden: what layer ``first - 1`` gave) and attention_mask. The output ``output`` is the mean
    pooled, L2-normalised vector (batch x hidden), or, with ``output`` "hidden", the states after
    the last layer, from which another graph goes on (a fine-tuned model is kept as its shared
    lower layers, its adapted upper layers and the base encoder's upper layers).
    ``fused``: each layer in ONNX Runtime's fused CPU operators (faster); off, in standard ONNX
    operators only (a file to be quantised to int8: the quantiser takes every matrix product,
    self-attention's included, and infers the types between them)."""
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
    if first == 0:
        # embeddings: word + (position + token type 0), then LayerNorm
        word = init("word_embeddings", weights["embeddings.word_embeddings.weight"])
        pos_type = init("position_type_embeddings", weights["embeddings.position_embeddings.weight"]
                        + weights["embeddings.token_type_embeddings.weight"][0][None, :])
        ids_shape = node("Shape", ["input_ids"], "ids_shape")
        seq = node("Slice", [ids_shape, const("one_i", [1]), const("two_i", [2])], "seq_len")
        pos = node("Slice", [pos_type, const("zero_i", [0]), seq, const("zero_axis", [0])], "pos_emb")
        emb = node("Add", [node("Gather", [word, "input_ids"], "word_emb", axis=0), pos], "emb_sum")
        x = layer_norm(emb, "embeddings.LayerNorm", "emb_out")
        inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])]
    else:
        x = "hidden"
        inputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", h])]
    inputs.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]))
    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    if fused:
        mask_i32 = node("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    else:  # additive attention mask: 0 where attended, the most negative float where padded
        sqrt2 = init("sqrt2", np.array(np.sqrt(2.0), np.float32))
        half = init("half", np.array(0.5, np.float32))
        one = init("one", np.array(1.0, np.float32))
        inverted = node("Sub", [init("one_f", np.array(1.0, np.float32)), mask_f], "mask_inv")
        additive = node("Mul", [inverted, init("neg_big", np.array(np.finfo(np.float32).min, np.float32))], "mask_add")
        mask4 = node("Unsqueeze", [additive, const("axes_1_2", [1, 2])], "mask4")
        split_shape = const("split_shape", [0, 0, heads, h // heads])
        merge_shape = const("merge_shape", [0, 0, h])
        scale = init("attn_scale", np.array(1.0 / np.sqrt(h // heads), np.float32))

    def encoder_layer(x: str, i: int, w: Mapping[str, np.ndarray], tag: str) -> str:
        """One BERT layer. ``fused``: with ONNX Runtime's fused CPU operators, multi-head
        self-attention in one Attention node (query, key and value weights side by side), the
        bias, residual and LayerNorm of each sub-layer in one SkipLayerNormalization, the
        intermediate bias and exact GELU in one BiasGelu: the layer's own arithmetic in fewer
        passes."""
        p, t = f"encoder.layer.{i}", f"{tag}l{i}"

        def weight_t(name: str) -> np.ndarray:
            return w[f"{p}.{name}.weight"].T  # MatMul wants (in, out)

        def skip_ln(src: str, residual: str, dense: str, norm: str, out: str) -> str:
            """LayerNorm(src + dense bias + residual)."""
            bias = init(f"{tag}{p}.{dense}.bias", w[f"{p}.{dense}.bias"])
            g = init(f"{tag}{p}.{norm}.weight", w[f"{p}.{norm}.weight"])
            b = init(f"{tag}{p}.{norm}.bias", w[f"{p}.{norm}.bias"])
            if fused:
                return node("SkipLayerNormalization", [src, residual, g, b, bias], out, domain="com.microsoft",
                            epsilon=cfg.eps)
            summed = node("Add", [node("Add", [src, bias], f"{out}_biased"), residual], f"{out}_res")
            return node("LayerNormalization", [summed, g, b], out, axis=-1, epsilon=cfg.eps)

        def bias_gelu(src: str, bias: str, out: str) -> str:
            """Exact GELU of src + bias: 0.5 * x * (1 + erf(x / sqrt(2)))."""
            if fused:
                return node("BiasGelu", [src, bias], out, domain="com.microsoft")
            x = node("Add", [src, bias], f"{out}_x")
            erf = node("Erf", [node("Div", [x, sqrt2], f"{out}_div")], f"{out}_erf")
            return node("Mul", [node("Mul", [x, half], f"{out}_half"), node("Add", [erf, one], f"{out}_add")], out)

        names = ("attention.self.query", "attention.self.key", "attention.self.value")
        if fused:
            qkv_w = init(f"{tag}{p}.attention.qkv.weight_t", np.concatenate([weight_t(n) for n in names], axis=1))
            qkv_b = init(f"{tag}{p}.attention.qkv.bias", np.concatenate([w[f"{p}.{n}.bias"] for n in names]))
            ctx = node("Attention", [x, qkv_w, qkv_b, mask_i32], f"{t}_ctx", domain="com.microsoft",
                       num_heads=heads, mask_filter_value=float(np.finfo(np.float32).min))
        else:  # plain matrix products, each of which int8 quantisation can take
            def heads_of(name: str, out: str, perm: list[int]) -> str:
                wt = init(f"{tag}{p}.{name}.weight_t", weight_t(name))
                b = init(f"{tag}{p}.{name}.bias", w[f"{p}.{name}.bias"])
                projected = node("Add", [node("MatMul", [x, wt], f"{out}_mm"), b], out)
                return node("Transpose", [node("Reshape", [projected, split_shape], f"{out}4")], f"{out}t", perm=perm)

            q = heads_of(names[0], f"{t}_q", [0, 2, 1, 3])
            k = heads_of(names[1], f"{t}_k", [0, 2, 3, 1])
            v = heads_of(names[2], f"{t}_v", [0, 2, 1, 3])
            scores = node("Mul", [node("MatMul", [q, k], f"{t}_qk"), scale], f"{t}_scaled")
            probs = node("Softmax", [node("Add", [scores, mask4], f"{t}_masked")], f"{t}_probs", axis=-1)
            ctx = node("Transpose", [node("MatMul", [probs, v], f"{t}_ctx4")], f"{t}_ctxt", perm=[0, 2, 1, 3])
            ctx = node("Reshape", [ctx, merge_shape], f"{t}_ctx")
        wo = init(f"{tag}{p}.attention.output.dense.weight_t", weight_t("attention.output.dense"))
        x = skip_ln(node("MatMul", [ctx, wo], f"{t}_attn_mm"), x, "attention.output.dense",
                    "attention.output.LayerNorm", f"{t}_ln1")
        wi = init(f"{tag}{p}.intermediate.dense.weight_t", weight_t("intermediate.dense"))
        bi = init(f"{tag}{p}.intermediate.dense.bias", w[f"{p}.intermediate.dense.bias"])
        gelu = bias_gelu(node("MatMul", [x, wi], f"{t}_inter_mm"), bi, f"{t}_gelu")
        wout = init(f"{tag}{p}.output.dense.weight_t", weight_t("output.dense"))
        return skip_ln(node("MatMul", [gelu, wout], f"{t}_out_mm"), x, "output.dense", "output.LayerNorm", f"{t}_ln2")

    def pool(x: str, out: str) -> str:
        """Mean pooling over attended tokens, then L2 normalisation (as sentence-transformers)."""
        summed = node("ReduceSum", [node("Mul", [x, mask3], f"{out}_masked"), axis_1], f"{out}_sum", keepdims=0)
        mean = node("Div", [summed, count], f"{out}_mean")
        norm = node("Max", [node("ReduceL2", [mean, axis_last], f"{out}_norm_raw", keepdims=1), min_norm], f"{out}_norm")
        return node("Div", [mean, norm], out)

    mask3 = node("Unsqueeze", [mask_f, const("axis_2", [2])], "mask3")
    axis_1, axis_last = const("axis_1", [1]), const("axis_last", [-1])
    count = node("Max", [node("ReduceSum", [mask3, axis_1], "token_count_raw", keepdims=0),
                         init("min_count", np.array(1e-9, np.float32))], "token_count")
    min_norm = init("min_norm", np.array(1e-12, np.float32))
    for i in range(first, cfg.layers if last is None else last):
        x = encoder_layer(x, i, weights, "")
    if output == "hidden":
        node("Identity", [x], "hidden")
        outputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", h])]
    else:
        pool(x, output)
        outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", h])]

    graph = helper.make_graph(nodes, "sentence_encoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="escalation-matrix")
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the graph's matrix products, self-attention's included,
    weights per output channel (ONNX Runtime's ``quantize_dynamic``): a quarter of the matrix
    weights' size, activations quantised per call. Per-channel scales keep the vectors within
    cosine ~0.99 of fp32, where one scale per tensor loses several points of accuracy."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_quiet_quantiser)  # ONNX Runtime's quantiser writes its advice to the root logger
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            out = Path(work) / "int8.onnx"
            quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            os.replace(out, target)
    finally:
        root.removeFilter(_quiet_quantiser)


def _quiet_quantiser(record: logging.LogRecord) -> bool:
    """Drops what the quantiser says on the way (advice to run its shape pre-pass, a line per
    tensor), not its errors."""
    quantiser = f"onnxruntime{os.sep}quantization" in record.pathname
    return record.levelno >= logging.ERROR or not quantiser


def source_digest(folder: Path, extra: Mapping[str, str] | None = None) -> str:
    """Names the built file by everything it is built from: the builder version, the base weights
    (path, size, modification time) and, for the fine-tuned model, the adapter's digest."""
    st = (folder / "model.safetensors").stat()
    parts = {"graph": GRAPH_VERSION, "opset": OPSET, "base": str(folder.resolve()), "size": st.st_size,
             "mtime": st.st_mtime_ns, **(extra or {})}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def upper_file(model_file: Path) -> Path:
    """A fine-tuned model's adapted upper layers, beside its lower layers' file."""
    return model_file.with_name(f"{model_file.stem}-upper.onnx")


def branch_file(model_file: Path) -> Path:
    """The base encoder's upper layers for a fine-tuned model, beside its lower layers' file."""
    return model_file.with_name(f"{model_file.stem}-branch.onnx")


def ensure_model(folder: Path, cache: Path, stem: str, lora: Mapping[str, np.ndarray] | None = None,
                 alpha: float = 1.0, r: int = 1, extra: Mapping[str, str] | None = None, with_base: bool = False,
                 precision: str = "fp32", lower: int | None = None) -> Path:
    """The cached ONNX file for these weights, built first if missing (atomic writes, so processes
    starting together never read half a file). ``lower``: the model is kept in two files, the
    embeddings and the first ``lower`` layers, which the adapter must leave alone (this file: tokens
    to hidden states), and the layers above (``upper_file``), so models split alike share the
    lower file (``lower_key``). ``with_base`` (needs ``lower``): a third file holds the base
    encoder's layers above (``branch_file``), so a request's fine-tuned vector and its base vector
    each cost their own layers, the lower ones once."""
    if precision not in PRECISIONS:
        raise PolicyError("classifier.yaml", "precision", f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    int8 = {"precision": "int8"} if precision == "int8" else {}  # fp32 files keep their names
    stem = f"{stem}-int8" if int8 else stem
    if with_base and lower is None:
        raise ValueError("with_base needs the number of lower layers")
    split = {"lower": str(lower)} if lower is not None else {}
    digest = source_digest(folder, {**(extra or {}), "with_base": str(with_base), **int8, **split})
    path = cache / "onnx" / f"{stem}-{digest}.onnx"
    parts = [path, upper_file(path)] if lower is not None else [path]
    parts += [branch_file(path)] if with_base else []
    if all(p.exists() for p in parts):
        return path
    cfg = BertConfig(folder)
    weights = merged_weights(folder, lora, alpha, r)
    fused = precision == "fp32"  # int8 files are quantised from standard operators
    path.parent.mkdir(parents=True, exist_ok=True)
    if lower is not None:
        base = merged_weights(folder)
        changed = [k for k in weights if not np.array_equal(weights[k], base[k])]
        layers = [int(k.split(".")[2]) for k in changed if k.startswith("encoder.layer.")]
        if len(layers) != len(changed) or min(layers, default=cfg.layers) < lower:  # a lower file not the base's
            raise PolicyError("adapter.safetensors", "", f"adapts the embeddings or a layer below {lower}; "
                              "the ONNX backend's lower file holds base weights only")
        # the upper files first: a lower file on disk always has them
        _write(upper_file(path), build_graph(weights, cfg, first=lower, fused=fused), precision)
        if with_base:
            _write(branch_file(path), build_graph(base, cfg, first=lower, output="base_embedding", fused=fused), precision)
        _write(path, build_graph(weights, cfg, last=lower, output="hidden", fused=fused), precision)
    else:
        _write(path, build_graph(weights, cfg, fused=fused), precision)
    log.info("built ONNX encoder %s (%d MB)", path, sum(p.stat().st_size for p in parts) // 2**20)
    for old in path.parent.glob(f"{stem}-*.onnx"):  # the same model built from older sources
        name = old.stem.removesuffix("-branch").removesuffix("-upper")
        if name != path.stem and len(name) == len(stem) + 17:  # not the other precision's file (stem-int8-…)
            old.unlink(missing_ok=True)
    return path


def lower_layers(modules: list[str], layers: int) -> int:
    """How many layers a fine-tuned model's lower file holds: ``SHARED_LAYERS``, or fewer when the
    adapter's module paths (``...encoder.layer.3.attention...``) change a layer below them. The
    embeddings are never adapted (``ensure_model`` checks)."""
    parts = [m.split(".") for m in modules]
    found = [int(b) for p in parts for a, b in itertools.pairwise(p) if a == "layer" and b.isdigit()]
    return min([SHARED_LAYERS, layers, *found])


def lower_key(folder: Path, lower: int, precision: str) -> tuple[Any, ...]:
    """What a split model's lower file is built from (the base folder, its ``lower`` layers, the
    precision, the graph builder): models with the same key have identical lower files."""
    return (str(folder.resolve()), lower, precision, GRAPH_VERSION)


def _write(path: Path, data: bytes, precision: str) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    if precision == "int8":
        try:
            quantize_int8(tmp, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)


class OnnxEncoder:
    """Tokenizer (``tokenizers``) + ONNX Runtime session; ``encode`` returns L2-normalised
    float32 mean-pooled vectors like the sentence-transformers path."""

    def __init__(self, folder: Path, model_file: Path, name: str, threads: int | None = None,
                 max_length: int | None = None, rebuild: Callable[[], Path] | None = None,
                 shared_lower: tuple[Any, ...] | None = None):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime as ort
        except ImportError:
            _require("onnxruntime")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            _require("tokenizers")
        # the vectors' identity (exemplar caches are kept under it): a new build of the graph gives
        # new vectors, so it is part of the name
        self.name = f"{name}/g{GRAPH_VERSION}"
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

        def session(file: Path) -> Any:
            return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

        def lower_session(file: Path) -> Any:
            if shared_lower is None:
                return session(file)
            key = (*shared_lower, options.intra_op_num_threads)
            with _LOWER_LOCK:  # one load per key, even when two models start together
                found = _LOWER_SESSIONS.get(key)
                if found is None:
                    found = _LOWER_SESSIONS[key] = session(file)
            return found

        def load(file: Path) -> tuple[Any, Any, Any]:
            lower = lower_session(file)
            if lower.get_outputs()[0].name != "hidden":  # one file, the whole encoder
                return lower, None, None
            branch = branch_file(file)
            return lower, session(upper_file(file)), session(branch) if branch.exists() else None

        try:
            self.session, self.upper, self.branch = load(model_file)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file (disk full, killed copy): build it again
            if rebuild is None:
                raise PolicyError(str(model_file), "", f"cannot load the ONNX encoder ({exc})") from None
            log.warning("rebuilding damaged ONNX encoder %s (%s)", model_file, exc)
            for part in (model_file, upper_file(model_file), branch_file(model_file)):
                part.unlink(missing_ok=True)
            model_file = rebuild()
            self.session, self.upper, self.branch = load(model_file)
        self.model_file = model_file
        self._lock = threading.Lock()
        # the hidden states below the adapted layers of the latest requests (a file built
        # with_base), kept for the caller that asks for their base vectors next: the guard
        # compares the request it just classified. Bounded by size, as long texts are large.
        self._hidden: OrderedDict[str, np.ndarray] = OrderedDict()
        self._hidden_bytes = 0
        self._base_memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors, hidden = self._run(texts)
        if hidden:  # a file built with_base: kept for the base vectors
            with self._lock:
                for text, states in zip(texts, hidden):
                    self._remember_hidden(text, states)
        return vectors

    def base_view(self, name: str) -> "BaseView | None":
        """The base encoder's vectors from this file, or None when it was built without them."""
        return BaseView(self, name) if self.branch is not None else None

    def _remember_hidden(self, text: str, states: np.ndarray) -> None:
        old = self._hidden.pop(text, None)
        if old is not None:
            self._hidden_bytes -= old.nbytes
        self._hidden[text] = states
        self._hidden_bytes += states.nbytes
        while self._hidden_bytes > HIDDEN_MEMO_BYTES and self._hidden:
            self._hidden_bytes -= self._hidden.popitem(last=False)[1].nbytes

    def _batches(self, lengths: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows in passes of BATCH, similar lengths together (less padding), with their masks."""
        order = np.argsort(-lengths, kind="stable")
        batches = []
        for start in range(0, len(lengths), BATCH):
            rows = order[start : start + BATCH]
            mask = np.zeros((len(rows), int(lengths[rows].max())), np.int64)
            for i, row in enumerate(rows):
                mask[i, : lengths[row]] = 1
            batches.append((rows, mask))
        return batches

    def _run(self, texts: list[str], upper: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of ``texts`` (``upper`` False: none, zeros), and (files built with_base) each
        text's hidden states below the adapted layers."""
        out = np.zeros((len(texts), self.cfg.hidden), np.float32)
        hidden: list[np.ndarray] = [np.empty(0, np.float32)] * len(texts) if self.branch is not None else []
        if not texts:
            return out, hidden
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        for rows, mask in self._batches(lengths):
            ids = np.zeros(mask.shape, np.int64)
            for i, row in enumerate(rows):
                ids[i, : lengths[row]] = encodings[row].ids
            result = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if self.upper is None:
                out[rows] = result
                continue
            if hidden:  # kept for the base encoder's layers (a file built with_base)
                for i, row in enumerate(rows):
                    hidden[row] = result[i, : lengths[row]].copy()
            if upper:
                out[rows] = self.upper.run(None, {"hidden": result, "attention_mask": mask})[0]
        return out, hidden

    def base_vectors(self, states: list[np.ndarray]) -> np.ndarray:
        """The base encoder's vectors from hidden states the lower layers gave (its upper layers)."""
        assert self.branch is not None
        out = np.zeros((len(states), self.cfg.hidden), np.float32)
        lengths = np.array([len(s) for s in states])
        for rows, mask in self._batches(lengths):
            hidden = np.zeros((*mask.shape, self.cfg.hidden), np.float32)
            for i, row in enumerate(rows):
                hidden[i, : lengths[row]] = states[row]
            out[rows] = self.branch.run(None, {"hidden": hidden, "attention_mask": mask})[0]
        return out


class BaseView:
    """The base (un-adapted) encoder served by a fine-tuned model's files: its lower layers are
    the fine-tuned model's (their states kept from the fine-tuned pass for texts just encoded),
    its upper layers run from them in the branch file."""

    def __init__(self, encoder: OnnxEncoder, name: str):
        self.encoder = encoder
        self.name = f"{name}/g{GRAPH_VERSION}"  # the base encoder's own name

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.encoder
        if not texts:
            return np.zeros((0, enc.cfg.hidden), np.float32)
        with enc._lock:
            found = {t: enc._base_memo[t] for t in texts if t in enc._base_memo}
            states = {t: enc._hidden[t] for t in texts if t not in found and t in enc._hidden}
        missing = list(dict.fromkeys(t for t in texts if t not in found and t not in states))
        if missing:  # the lower layers only: the adapted ones are not wanted here
            states.update(zip(missing, enc._run(missing, upper=False)[1]))
        if states:
            computed = dict(zip(states, enc.base_vectors(list(states.values()))))
            found.update(computed)
            with enc._lock:
                for text, row in computed.items():
                    enc._base_memo[text] = row
                    enc._base_memo.move_to_end(text)
                while len(enc._base_memo) > MEMO:
                    enc._base_memo.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


def base_encoder(folder: Path, name: str, cache: Path, precision: str = "fp32") -> OnnxEncoder:
    def build() -> Path:
        return ensure_model(folder, cache, "base", precision=precision)

    return OnnxEncoder(folder, build(), name, rebuild=build)
