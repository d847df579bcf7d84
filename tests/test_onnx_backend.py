"""The ONNX Runtime backend: the same vectors as the sentence-transformers (torch) path for the
bundled encoder and for the fine-tuned one (LoRA merged with numpy), the same classifications
and eval figures, no torch import on the serving path, and a cached model file that follows the
weights it was built from."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV = Path("/work/shared/eval/dev.jsonl")

TEXTS = [
    "Write something for the website.",
    "Delete all customer email addresses from the database.",
    "Which format: list or paragraph?",
    "Übersetze das bitte — and keep the emoji 🚀 and the café's name.",
    "x",
    # longer than the encoder's 256-token window: both backends truncate the same way
    "Summarise the quarterly report for the leadership team, with figures and caveats. " * 40,
] + [f"Draft the {topic} for the spring campaign, item {i}" for i, topic in
     enumerate(["pricing page", "release notes", "onboarding email", "status update"] * 10)]


def base_path() -> Path:
    from escalation_matrix.embedder import _resolve_model

    return Path(_resolve_model("bundled"))


def write_adapter(folder: Path, seed: int = 0, layers: tuple[int, ...] = (3, 4, 5)) -> Path:
    """A LoRA adapter (peft tensor names, fp16, like `train` writes) large enough to move the
    vectors, a head and a manifest: a fine-tuned model folder without training one."""
    from safetensors.numpy import save_file

    from escalation_matrix.finetune import LABELS, file_sha256

    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lora = {}
    for layer in layers:
        for module, (out_dim, in_dim) in {"attention.self.query": (384, 384), "attention.self.key": (384, 384),
                                          "attention.self.value": (384, 384), "attention.output.dense": (384, 384),
                                          "intermediate.dense": (1536, 384), "output.dense": (384, 1536)}.items():
            name = f"base_model.model.encoder.layer.{layer}.{module}"
            lora[f"{name}.lora_A.default.weight"] = (rng.normal(size=(8, in_dim)) * 0.05).astype(np.float16)
            lora[f"{name}.lora_B.default.weight"] = (rng.normal(size=(out_dim, 8)) * 0.05).astype(np.float16)
    save_file(lora, str(folder / "adapter.safetensors"))
    save_file({"weight": (rng.normal(size=(len(LABELS), 384)) * 5).astype(np.float32),
               "bias": np.zeros(len(LABELS), np.float32)}, str(folder / "head.safetensors"))
    manifest = {"labels": LABELS, "config": {"lora_alpha": 16, "lora_r": 8}, "temperature": 1.5,
                "files": {n: file_sha256(folder / n) for n in ("adapter.safetensors", "head.safetensors")},
                "exemplar_keys": []}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return write_adapter(tmp_path_factory.mktemp("model") / "trained")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.model
def test_the_base_encoder_matches_the_torch_path():
    from escalation_matrix.embedder import get_embedder

    onnx, torch = get_embedder("bundled", "onnx"), get_embedder("bundled", "torch")
    assert onnx.name != torch.name  # the exemplar cache keeps each backend's vectors apart
    a, b = onnx.encode(TEXTS), torch.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert cosines(a, b).min() >= 0.9999
    # one text alone (no padding) gives the vector it gets in a padded batch
    assert cosines(onnx.encode([TEXTS[3]]), a[3:4]).min() >= 0.99999
    assert onnx.encode([]).shape == (0, 384)


@pytest.mark.model
def test_the_fine_tuned_encoder_matches_the_torch_merge(adapter):
    from escalation_matrix.embedder import get_embedder
    from escalation_matrix.trained import TrainedModel

    onnx = TrainedModel(adapter, str(base_path()), "onnx")
    torch = TrainedModel(adapter, str(base_path()), "torch")
    a, b = onnx.encode(TEXTS), torch.encode(TEXTS)
    assert cosines(a, b).min() >= 0.9999
    # the adapter is really applied: the fine-tuned vectors are not the base ones
    assert cosines(a, get_embedder("bundled", "onnx").encode(TEXTS)).min() < 0.99
    pa, pb = onnx.probabilities(a), torch.probabilities(b)
    assert np.abs(pa - pb).max() < 1e-3
    assert (pa.argmax(axis=1) == pb.argmax(axis=1)).all()
    # the base vectors served from the same files (shared lower layers): from the hidden states of
    # the pass just made, from a fresh pass, and remembered, all equal to the torch base encoder's
    base = get_embedder("bundled", "torch").encode(TEXTS)
    assert onnx.base_encoder is not None and onnx.base_encoder.name == get_embedder("bundled", "onnx").name
    assert set(onnx._encoder._hidden) == set(TEXTS) and not onnx._encoder._base_memo
    assert cosines(onnx.base_encoder.encode(TEXTS), base).min() >= 0.9999
    onnx._encoder._base_memo.clear()
    onnx._encoder._hidden.clear()
    upper_runs: list[int] = []

    class Counting:  # the adapted upper layers are not run for a base vector alone
        def __init__(self, inner):
            self.inner = inner

        def run(self, *args):
            upper_runs.append(1)
            return self.inner.run(*args)

    onnx._encoder.upper = Counting(onnx._encoder.upper)
    assert cosines(onnx.base_encoder.encode(TEXTS[::-1]), base[::-1]).min() >= 0.9999
    assert not upper_runs
    assert set(onnx._encoder._base_memo) == set(TEXTS)
    assert cosines(onnx.base_encoder.encode(TEXTS), base).min() >= 0.9999


@pytest.mark.model
def test_the_shipped_model_matches_the_torch_path():
    from escalation_matrix.paths import default_dir
    from escalation_matrix.trained import TrainedModel

    folder = default_dir("trained")
    if not (folder / "manifest.json").exists():
        pytest.skip("no shipped model folder in this checkout")
    a = TrainedModel(folder, str(base_path()), "onnx").encode(TEXTS)
    b = TrainedModel(folder, str(base_path()), "torch").encode(TEXTS)
    assert cosines(a, b).min() >= 0.9999


@pytest.mark.model
def test_the_built_file_follows_the_adapter(tmp_path, adapter):
    """The cached ONNX file is named by the adapter's digest (checked against the manifest on
    load): another adapter builds another file, a damaged file is rebuilt, never served."""
    from escalation_matrix.errors import PolicyError
    from escalation_matrix.onnx_encoder import branch_file, upper_file
    from escalation_matrix.trained import TrainedModel

    cache = tmp_path / "cache"
    first = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    other = TrainedModel(write_adapter(tmp_path / "other", seed=1), str(base_path()), "onnx", cache=cache)
    assert first._encoder.model_file != other._encoder.model_file
    # each as its lower layers, with its adapted and its base upper layers beside them
    files = {first._encoder.model_file, other._encoder.model_file}
    assert {p.name for p in (cache / "onnx").iterdir()} == {p.name for f in files for p in (f, upper_file(f), branch_file(f))}
    vectors = first.encode(TEXTS[:3])
    assert cosines(vectors, other.encode(TEXTS[:3])).max() < 0.99
    base = first.base_encoder.encode(TEXTS[:3])

    first._encoder.model_file.write_bytes(b"not a model")  # a damaged cache file
    again = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    assert cosines(again.encode(TEXTS[:3]), vectors).min() >= 0.99999
    branch_file(first._encoder.model_file).write_bytes(b"")  # a damaged part: all rebuilt
    again = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    assert cosines(again.encode(TEXTS[:3]), vectors).min() >= 0.99999
    assert cosines(again.base_encoder.encode(TEXTS[:3]), base).min() >= 0.99999
    branch_file(first._encoder.model_file).unlink()  # a missing branch: built again
    again = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    assert cosines(again.base_encoder.encode(TEXTS[:3]), base).min() >= 0.99999
    upper_file(first._encoder.model_file).write_bytes(b"\x00" * 64)  # a damaged adapted part
    again = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    assert cosines(again.encode(TEXTS[:3]), vectors).min() >= 0.99999
    again = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    assert cosines(again.base_encoder.encode(TEXTS[:3]), base).min() >= 0.99999

    tampered = tmp_path / "tampered"
    write_adapter(tampered, seed=2)
    write_adapter(tmp_path / "scratch", seed=3)
    (tampered / "adapter.safetensors").write_bytes((tmp_path / "scratch" / "adapter.safetensors").read_bytes())
    with pytest.raises(PolicyError, match="does not match manifest.json"):
        TrainedModel(tampered, str(base_path()), "onnx", cache=cache)


@pytest.mark.model
def test_models_adapted_from_the_same_layer_share_their_lower_layers(tmp_path, adapter):
    """The classifier (adapted from layer 3 up) and the same-issue pair model (from layer 2 up)
    both leave the lowest two layers alone: one session of those layers and the token embeddings
    serves both, and each model's vectors are still its own merge's."""
    from escalation_matrix.trained import TrainedModel

    cache = tmp_path / "cache"
    classifier = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    pair_folder = write_adapter(tmp_path / "pair", seed=4, layers=(2, 3, 4, 5))
    pair = TrainedModel(pair_folder, str(base_path()), "onnx", cache=cache, with_base=False)
    assert pair._encoder.session is classifier._encoder.session
    assert pair._encoder.upper is not classifier._encoder.upper
    assert pair.base_encoder is None and pair._encoder.branch is None
    vectors = pair.encode(TEXTS)
    assert not pair._encoder._hidden  # no base encoder to keep hidden states for
    assert cosines(vectors, TrainedModel(pair_folder, str(base_path()), "torch").encode(TEXTS)).min() >= 0.9999
    assert cosines(vectors, classifier.encode(TEXTS)).max() < 0.99

    # adapted from a lower layer: its lower file is another, so is its session
    lower = write_adapter(tmp_path / "lower", seed=5, layers=(1, 2, 3, 4, 5))
    other = TrainedModel(lower, str(base_path()), "onnx", cache=cache, with_base=False)
    assert other._encoder.session is not classifier._encoder.session
    assert cosines(other.encode(TEXTS), TrainedModel(lower, str(base_path()), "torch").encode(TEXTS)).min() >= 0.9999
    # int8 files are other files
    assert TrainedModel(pair_folder, str(base_path()), "onnx-int8", cache=cache,
                        with_base=False)._encoder.session is not classifier._encoder.session


@pytest.mark.model
def test_the_batching_encoder_batches_onnx_calls_and_keeps_the_vectors():
    from escalation_matrix.embedcache import CachingEmbedder
    from escalation_matrix.embedder import get_embedder

    inner = get_embedder("bundled", "onnx")
    calls: list[int] = []

    class Counting:
        name = inner.name

        def encode(self, texts):
            calls.append(len(texts))
            return inner.encode(texts)

    wrapped = CachingEmbedder(Counting())
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, wrapped.encode([TEXTS[6 + i]])))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = inner.encode(TEXTS[6:22])
    got = np.concatenate([results[i] for i in range(16)])
    assert cosines(got, expected).min() >= 0.99999
    assert sum(calls) == 16 and len(calls) < 16  # concurrent callers shared model passes


def labelled_sample(n: int = 60) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[:: max(1, len(rows) // n)][:n]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def with_settings(policy, **update):
    return replace(policy, classifier=policy.classifier.model_copy(update=update))


@pytest.mark.model
@pytest.mark.skipif(not DEV.exists(), reason="the labelled dev file is not on this machine")
def test_eval_figures_are_identical_on_both_backends(policy, adapter):
    """Same types, same explanations and the same eval report from onnx and torch, for the
    fine-tuned model (shipped, or the test adapter when none is shipped)."""
    from escalation_matrix.classifier import Classifier
    from escalation_matrix.evaluate import evaluate
    from escalation_matrix.paths import default_dir

    texts, gold = labelled_sample()
    folder = default_dir("trained")
    trained = policy.classifier.trained
    if not (folder / "manifest.json").exists():
        trained = trained.model_copy(update={"folder": str(adapter)})
    runs = {}
    for backend in ("onnx", "torch"):
        clf = Classifier(with_settings(policy, method="trained", backend=backend, trained=trained))
        results = clf.classify_many(texts)
        runs[backend] = (results, evaluate(gold, [r.type.value for r in results], texts))
    (onnx, onnx_report), (torch, torch_report) = runs["onnx"], runs["torch"]
    assert [r.type for r in onnx] == [r.type for r in torch]
    assert [[m.text for m in r.exemplars] for r in onnx] == [[m.text for m in r.exemplars] for r in torch]
    assert onnx_report == torch_report


NO_TORCH = """
import asyncio, importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "sentence_transformers", "transformers", "peft"}:
            raise ModuleNotFoundError(f"serving imported {name}", name=name)
sys.meta_path.insert(0, Block())
from mcp import Client
from escalation_matrix.mcp_app import build_server

async def main():
    async with Client(build_server(db=sys.argv[1])) as client:
        first = await client.call_tool("classify", {"request": "Delete all customer email addresses from the database."})
        esc = await client.call_tool("escalate", {"conversation_id": "c1", "request": "Write something for the website.",
                                                  "question": "Who is the audience?"})
        again = await client.call_tool("escalate", {"conversation_id": "c1", "request": "Write something for the website.",
                                                    "question": "Who is the audience?"})
    assert not first.is_error and not esc.is_error and not again.is_error, (first, esc, again)
    print(json.dumps({"loaded": sorted(m for m in sys.modules if m.split(".")[0] in
                                       {"torch", "sentence_transformers", "transformers", "peft"}),
                      "classify": first.structured_content}))
asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.model
def test_the_serving_path_never_imports_torch(data_copy, adapter, tmp_path):
    """An MCP server (fine-tuned model, base encoder for the conversation guard, exemplar cache)
    classifies and escalates with torch, transformers and sentence-transformers unimportable."""
    config = data_copy / "policies" / "classifier.yaml"
    text = config.read_text(encoding="utf-8")
    import re

    text = re.sub(r"(?m)^method: .*$", "method: trained", text)
    text = re.sub(r"(?m)^backend: .*$", "backend: onnx", text)
    text = re.sub(r"(?m)^  folder: .*$", f"  folder: {adapter}", text)
    config.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "server"), "ESCALATION_MATRIX_POLICIES": str(data_copy / "policies"),
           "ESCALATION_MATRIX_PHRASES": str(data_copy / "phrases"),
           "ESCALATION_MATRIX_EMBEDDINGS": str(data_copy / "embeddings")}
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path / "e.db")], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["classify"]["type"]  # a real answer came back


def test_an_unknown_backend_is_a_clear_policy_error(data_copy):
    from escalation_matrix.errors import PolicyError
    from escalation_matrix.loader import load_policy
    config = data_copy / "policies" / "classifier.yaml"
    config.write_text(re.sub(r"(?m)^backend: .*$", "backend: tensorflow", config.read_text(encoding="utf-8")),
                      encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    assert "backend" in str(err.value) and "onnx" in str(err.value)
