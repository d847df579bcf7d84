"""The incremental exemplar cache: vectors are stored per text (keyed by the encoder's identity and
the text), so adding or editing one exemplar encodes exactly that text; encoding runs in batches
under a progress bar on stderr; the store is written atomically and holds only current exemplars;
the per-content cache files of earlier versions are removed; a hot reload re-encodes only the edited
exemplars. Encoder calls are counted on a wrapper around the fast test embedder (and, in the model
test, around the real fine-tuned encoder)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from escalation_matrix.classifier import Classifier
from escalation_matrix.embedcache import ENCODE_BATCH, exemplar_vectors, store_path, text_key
from escalation_matrix.embedder import get_embedder
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.reload import Reloader
from escalation_matrix.store import Store

NEW_EXEMPLAR = "Rotate the signing keys of the payment gateway tonight."


class Counting:
    """Counts the model calls and the texts encoded; everything else reaches the wrapped encoder."""

    def __init__(self, inner):
        self.inner, self.calls, self.texts = inner, 0, []

    @property
    def name(self) -> str:
        return self.inner.name

    def encode(self, texts):
        self.calls += 1
        self.texts.extend(texts)
        return self.inner.encode(texts)

    def reset(self) -> None:
        self.calls, self.texts = 0, []

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def load(root: Path):
    return load_policy(root / "policies", root / "phrases", root / "embeddings")


def add_exemplar(root: Path, text: str = NEW_EXEMPLAR, file: str = "scope.yaml") -> None:
    path = root / "embeddings" / file
    body = path.read_text()
    marker = "exemplars:\n"
    assert marker in body
    path.write_text(body.replace(marker, f"{marker}  - {text}\n", 1))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))


def stored_keys(folder: Path, name: str) -> set[str]:
    with np.load(store_path(folder, name)) as data:
        return {k.decode() for k in data["keys"]}


def test_adding_one_exemplar_encodes_exactly_one_text(data_copy, tmp_path, capsys):
    cache = tmp_path / "cache"
    encoder = Counting(get_embedder("fake"))
    policy = load(data_copy)
    total = len({e.text for e in policy.exemplars})
    first = Classifier(policy, embedder=encoder, cache=cache)
    assert len(encoder.texts) == total and encoder.calls == math.ceil(total / ENCODE_BATCH)  # batched
    err = capsys.readouterr().err
    assert f"encoding {total} exemplar(s)" in err and f"{total}/{total}" in err  # the bar, on stderr

    encoder.reset()
    Classifier(policy, embedder=encoder, cache=cache)
    assert encoder.calls == 0  # nothing changed: nothing encoded

    add_exemplar(data_copy)
    encoder.reset()
    added = Classifier(load(data_copy), embedder=encoder, cache=cache)
    assert encoder.texts == [NEW_EXEMPLAR] and encoder.calls == 1
    assert "encoding" not in capsys.readouterr().err  # one text: no bar
    # the vectors are those a cold encode gives, in exemplar order
    fresh = get_embedder("fake").encode([e.text for e in added.exemplars])
    assert np.allclose(added.vectors, fresh, atol=1e-6)
    assert np.allclose(first.vectors, fresh[[i for i, e in enumerate(added.exemplars) if e.text != NEW_EXEMPLAR]],
                       atol=1e-6)


def test_one_store_per_encoder_holding_only_current_exemplars(data_copy, tmp_path):
    cache = tmp_path / "cache"
    encoder = Counting(get_embedder("fake"))
    add_exemplar(data_copy)
    Classifier(load(data_copy), embedder=encoder, cache=cache)
    assert text_key(encoder.name, NEW_EXEMPLAR) in stored_keys(cache, encoder.name)
    # editing the exemplar: one text encoded, the old one's entry pruned, still one file
    path = data_copy / "embeddings/scope.yaml"
    path.write_text(path.read_text().replace(NEW_EXEMPLAR, "Rotate the payment gateway's signing keys now."))
    encoder.reset()
    policy = load(data_copy)
    Classifier(policy, embedder=encoder, cache=cache)
    assert encoder.texts == ["Rotate the payment gateway's signing keys now."]
    keys = stored_keys(cache, encoder.name)
    assert text_key(encoder.name, NEW_EXEMPLAR) not in keys
    assert keys == {text_key(encoder.name, e.text) for e in policy.exemplars}
    assert [p.name for p in cache.iterdir()] == [store_path(cache, encoder.name).name]  # no temp files left


def test_old_per_content_cache_files_are_removed(data_copy, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    legacy = [cache / "bundled-92bd0257023c0bfd.npy", cache / "trained-286a93424aa2-onnx-dfad450e574ebb86.npy"]
    for path in legacy:
        np.save(path, np.zeros((2, 3), np.float32))
    unrelated = cache / "onnx"
    unrelated.mkdir()
    (unrelated / "model.onnx").write_bytes(b"x")
    Classifier(load(data_copy), embedder=get_embedder("fake"), cache=cache)
    assert not any(p.exists() for p in legacy)
    assert (unrelated / "model.onnx").exists()  # only the old exemplar files go


def test_an_unreadable_store_is_rebuilt(data_copy, tmp_path, caplog):
    cache = tmp_path / "cache"
    encoder = Counting(get_embedder("fake"))
    Classifier(load(data_copy), embedder=encoder, cache=cache)
    store_path(cache, encoder.name).write_bytes(b"not a numpy file")
    encoder.reset()
    clf = Classifier(load(data_copy), embedder=encoder, cache=cache)
    assert len(encoder.texts) == len({e.text for e in clf.exemplars})
    assert "ignoring unreadable exemplar cache" in caplog.text


def test_duplicate_texts_are_encoded_once_and_an_empty_list_is_fine(tmp_path):
    encoder = Counting(get_embedder("fake"))
    vectors = exemplar_vectors(encoder, ["a b", "c d", "a b"], tmp_path)
    assert encoder.texts == ["a b", "c d"] and vectors.shape[0] == 3 and np.allclose(vectors[0], vectors[2])
    assert exemplar_vectors(encoder, [], tmp_path).shape[0] == 0


def test_a_hot_reload_re_encodes_only_the_edited_exemplar(data_copy, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ESCALATION_MATRIX_CACHE", str(tmp_path / "cache"))
    encoder = Counting(get_embedder("fake"))
    policy = load(data_copy)
    guard = ConversationGuard(policy, Classifier(policy, embedder=encoder), Store(db_path))
    reloader = Reloader(guard)
    add_exemplar(data_copy)
    encoder.reset()
    status = reloader.reload("test")
    assert status["ok"], status
    assert encoder.texts == [NEW_EXEMPLAR]
    assert NEW_EXEMPLAR in [e.text for e in guard.classifier.exemplars]


@pytest.mark.model
def test_the_fine_tuned_classifier_encodes_one_new_exemplar_on_each_encoder(data_copy, tmp_path):
    """method: trained: the fine-tuned encoder's vectors (all exemplars) and the base encoder's
    vectors of exemplars added since training (the nearest-exemplar check) each encode only the
    added text once their stores are warm."""
    from escalation_matrix.classifier import load_trained

    cache = None  # the session's cache: the shipped exemplars are likely encoded already
    policy = load(data_copy)
    model = load_trained(policy.classifier)
    # the base encoder: the model's own view of it (ONNX) or the plain sentence encoder (torch)
    trained = Counting(model)
    base = Counting(getattr(model, "base_encoder", None)
                    or get_embedder(policy.classifier.model, policy.classifier.backend))
    model_wrapper = _WithBase(trained, base)
    Classifier(policy, embedder=model_wrapper, cache=cache)
    add_exemplar(data_copy, "Wire the quarterly bonus to my personal account before the audit.", "scope.yaml")
    trained.reset()
    base.reset()
    clf = Classifier(load(data_copy), embedder=model_wrapper, cache=cache)
    assert trained.texts == ["Wire the quarterly bonus to my personal account before the audit."]
    assert clf.new_vectors is not None and base.texts == trained.texts
    assert clf.classify("Wire the quarterly bonus to my personal account before the audit.").type.value == "scope"


class _WithBase(Counting):
    """The fine-tuned model with its base encoder counted separately."""

    def __init__(self, trained: Counting, base: Counting):
        super().__init__(trained)
        self.base_encoder = base

    def encode(self, texts):
        return self.inner.encode(texts)
