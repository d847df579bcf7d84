"""Shared fixtures. ``policy`` is the shipped policy; ``fake_classifier`` uses the deterministic
hashing embedder (fast, for logic); ``classifier`` loads the real bundled model once per run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exemplar vectors are cached per run, never in the developer's home."""
    os.environ["ESCALATION_MATRIX_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def policy():
    from escalation_matrix.loader import load_policy

    return load_policy()


@pytest.fixture(scope="session")
def fake_classifier(policy):
    from escalation_matrix.classifier import Classifier
    from escalation_matrix.embedder import get_embedder

    return Classifier(policy, embedder=get_embedder("fake"))


@pytest.fixture(scope="session")
def classifier(policy):
    """The real sentence-transformers model (bundled all-MiniLM-L6-v2)."""
    from escalation_matrix.classifier import Classifier

    return Classifier(policy)


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """An editable copy of the shipped policies/, phrases/ and embeddings/ folders."""
    for name in ("policies", "phrases", "embeddings"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "escalations.db"


@pytest.fixture
def clock():
    from clocks import Clock

    return Clock()


@pytest.fixture
def store(db_path: Path, clock):
    """A state store on a real SQLite file, on the hand-moved clock."""
    from escalation_matrix.store import Store

    s = Store(db_path, clock=clock)
    yield s
    s.close()
