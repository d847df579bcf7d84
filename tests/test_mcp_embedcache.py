"""The server's embedder front: same vectors as the wrapped embedder, memoised and batched."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from escalation_matrix.embedcache import CachingEmbedder
from escalation_matrix.embedder import HashEmbedder


class Counting(HashEmbedder):
    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        return super().encode(texts)


def test_vectors_equal_the_wrapped_embedder_and_repeats_are_memoised():
    inner = Counting()
    front = CachingEmbedder(inner)
    texts = ["deploy the build", "write the report", "deploy the build"]
    assert np.allclose(front.encode(texts), HashEmbedder().encode(texts))
    front.encode(["write the report"])
    assert inner.calls == [2]


def test_concurrent_callers_share_model_passes_and_get_their_own_vectors():
    inner = Counting()
    front = CachingEmbedder(inner)
    barrier, out = threading.Barrier(16), {}

    def call(i: int) -> None:
        barrier.wait()
        out[i] = front.encode([f"request number {i}"])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = HashEmbedder().encode([f"request number {i}" for i in range(16)])
    assert all(np.allclose(out[i], expected[i]) for i in range(16))
    assert sum(inner.calls) == 16


def test_an_embedder_error_reaches_the_caller():
    class Broken(HashEmbedder):
        def encode(self, texts):
            raise RuntimeError("model unavailable")

    with pytest.raises(RuntimeError, match="model unavailable"):
        CachingEmbedder(Broken()).encode(["anything"])
