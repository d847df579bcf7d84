"""`precision: int8` (ONNX backend): the encoder file is built with int8 matrix weights, kept apart
from the fp32 file and its exemplar vectors, close to fp32 in vectors and decisions, and refused
with the torch backend."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from test_onnx_backend import TEXTS, base_path, cosines, write_adapter

TRAIN = Path("/work/shared/eval/train.jsonl")


@pytest.mark.model
def test_the_int8_file_is_smaller_close_to_fp32_and_kept_apart(tmp_path, caplog):
    from escalation_matrix.onnx_encoder import branch_file, upper_file
    from escalation_matrix.trained import TrainedModel

    adapter = write_adapter(tmp_path / "trained")
    cache = tmp_path / "cache"
    fp32 = TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    with caplog.at_level(logging.DEBUG):
        int8 = TrainedModel(adapter, str(base_path()), "onnx-int8", cache=cache)
    # the quantiser's running commentary (a line per tensor) stays out of the server's log
    assert not [r for r in caplog.records if "onnxruntime" in r.pathname]
    assert any("built ONNX encoder" in r.getMessage() for r in caplog.records)
    small, large = int8._encoder.model_file, fp32._encoder.model_file
    assert small != large and "-int8-" in small.name and "-int8-" not in large.name
    def size(lower):  # the lower layers' file and the upper layers' files beside it
        return sum(p.stat().st_size for p in (lower, upper_file(lower), branch_file(lower)))

    assert size(small) < 0.7 * size(large)  # the matrix weights are a quarter
    # each precision keeps its own exemplar vectors (the cache is keyed by the encoder's name)
    assert int8.name != fp32.name and int8.base_encoder.name != fp32.base_encoder.name
    a, b = fp32.encode(TEXTS), int8.encode(TEXTS)
    c = cosines(a, b)
    assert c.min() >= 0.95 and c.mean() >= 0.98
    assert c.min() < 0.99999  # really quantised, not the fp32 file again
    base = cosines(fp32.base_encoder.encode(TEXTS), int8.base_encoder.encode(TEXTS))
    assert base.min() >= 0.95 and base.mean() >= 0.98
    # building the fp32 file again (a new process) leaves the int8 file in place, and back
    TrainedModel(adapter, str(base_path()), "onnx", cache=cache)
    TrainedModel(adapter, str(base_path()), "onnx-int8", cache=cache)
    files = {small, large}
    assert {p.name for p in (cache / "onnx").iterdir()} == {p.name for f in files for p in (f, upper_file(f), branch_file(f))}


@pytest.mark.model
def test_the_base_encoder_in_int8():
    from escalation_matrix.embedder import get_embedder

    fp32, int8 = get_embedder("bundled", "onnx"), get_embedder("bundled", "onnx-int8")
    assert fp32 is not int8 and fp32.name != int8.name
    c = cosines(fp32.encode(TEXTS), int8.encode(TEXTS))
    assert c.min() >= 0.95 and c.mean() >= 0.98


@pytest.mark.model
@pytest.mark.skipif(not TRAIN.exists(), reason="the labelled training file is not on this machine")
def test_the_shipped_model_in_int8_decides_like_fp32():
    """The shipped classifier with `precision: int8` gives the type fp32 gives on nearly every
    request (200 training requests), and its probabilities move little."""
    from escalation_matrix.classifier import Classifier
    from escalation_matrix.loader import load_policy

    policy = load_policy()
    texts = [json.loads(line)["text"] for line in TRAIN.read_text(encoding="utf-8").splitlines()[:200]]
    results = {}
    for precision in ("fp32", "int8"):
        clf = Classifier(replace(policy, classifier=policy.classifier.model_copy(update={"precision": precision})))
        results[precision] = [clf.classify(t) for t in texts]
    same = sum(a.type == b.type for a, b in zip(results["fp32"], results["int8"]))
    assert same >= 0.95 * len(texts)
    assert np.median([abs(a.confidence - b.confidence) for a, b in zip(results["fp32"], results["int8"])]) < 0.02


def load(data_copy):
    from escalation_matrix.loader import load_policy

    return load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")


def test_int8_with_the_torch_backend_is_a_clear_policy_error(data_copy):
    from escalation_matrix.errors import PolicyError
    from test_policy_check import edit

    edit(data_copy / "policies" / "classifier.yaml", "\nbackend: onnx\n", "\nbackend: torch\n")
    edit(data_copy / "policies" / "classifier.yaml", "\nprecision: fp32\n", "\nprecision: int8\n")
    with pytest.raises(PolicyError) as err:
        load(data_copy)
    assert "precision: int8 needs backend: onnx" in str(err.value)


def test_an_unknown_precision_is_a_clear_policy_error(data_copy):
    from escalation_matrix.errors import PolicyError
    from test_policy_check import edit

    edit(data_copy / "policies" / "classifier.yaml", "\nprecision: fp32\n", "\nprecision: fp16\n")
    with pytest.raises(PolicyError) as err:
        load(data_copy)
    assert "precision" in str(err.value) and "int8" in str(err.value)
