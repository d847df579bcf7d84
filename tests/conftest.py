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


# session fixtures that load the real model: set up before any per-test check can see them
MODEL_FIXTURES = {"classifier"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("model") is None]
    if unmarked:
        raise pytest.UsageError("these tests use the real model but are not marked @pytest.mark.model: "
                                + ", ".join(unmarked))


@pytest.fixture(autouse=True)
def _honest_marks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast lane (``make test-fast``: ``-m "not model and not slow"``) stays fast only if the marks
    are true: a test that loads the real model must be marked ``model``, one that starts a process
    (a server, a browser, the CLI) ``slow``. When a run deselects a mark, an unmarked test that does
    the marked thing fails at once and names the mark to add."""
    import subprocess

    from escalation_matrix import embedder, onnx_encoder

    selection = request.config.option.markexpr or ""

    def refuse(mark: str, what: str):
        def call(*args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} {what}; mark it @pytest.mark.{mark}")
        return call

    if "not model" in selection and request.node.get_closest_marker("model") is None:
        monkeypatch.setattr(embedder.SentenceTransformerEmbedder, "__init__", refuse("model", "loads the real model"))
        monkeypatch.setattr(onnx_encoder.OnnxEncoder, "__init__", refuse("model", "loads the real model"))
    if "not slow" in selection and request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr(subprocess.Popen, "__init__", refuse("slow", "starts a subprocess"))


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``backends`` that use ``db_path`` run twice: on a SQLite file and on a fresh
    database of a real PostgreSQL server (the PostgreSQL run is also marked slow: it starts one)."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "backend" in metafunc.fixturenames \
            and metafunc.definition.get_closest_marker("sqlite_only") is None:
        metafunc.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
                             indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory):
    """A PostgreSQL server for the run (initdb into a temporary folder, a free port, removed at the
    end) and a database migrated once, copied for every test. Without PostgreSQL installed the
    PostgreSQL runs are skipped, except where ESCALATION_MATRIX_REQUIRE_POSTGRES is set (CI)."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from pg_cluster import Cluster, bin_dir

    if bin_dir() is None:
        if os.environ.get("ESCALATION_MATRIX_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (ESCALATION_MATRIX_REQUIRE_POSTGRES) but not installed")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    cluster = Cluster().start()
    from escalation_matrix.store import Store

    Store(cluster.create_database("template_em")).close()
    yield cluster
    cluster.remove()


_pg_databases = iter(range(1, 1_000_000))


@pytest.fixture
def db_path(tmp_path: Path, backend: str, request: pytest.FixtureRequest):
    """The state database of one test: a SQLite file, or (backend ``postgresql``) the URL of a fresh
    PostgreSQL database."""
    if backend != "postgresql":
        yield tmp_path / "escalations.db"
        return
    cluster = request.getfixturevalue("pg_template")
    from escalation_matrix import pgsql

    # a store the test leaves open would close its pool when garbage-collected, possibly in one of
    # the pool's own threads (psycopg_pool then fails to join itself): close them when the test ends
    pools = []
    opener = pgsql.open_pool

    def recording(*args, **kwargs):
        pools.append(opener(*args, **kwargs))
        return pools[-1]

    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(pgsql, "open_pool", recording)
    yield cluster.create_database(f"t{os.getpid()}_{next(_pg_databases)}", template="template_em")
    for pool in pools:
        if not pool.closed:
            pool.close()


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
