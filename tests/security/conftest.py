"""Fixtures: ``fake_policies`` (the shipped policy with ``model: fake``) and ``serve`` (a real HTTP
server process on it; see ``serving``)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
from serving import OPERATOR_TOKEN, ROOT, Served, serve_http, server_env, stop


@pytest.fixture
def fake_policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", folder)
    path = folder / "classifier.yaml"
    path.write_text(path.read_text().replace("model: bundled", "model: fake"))
    return folder


@pytest.fixture
def serve(tmp_path: Path, fake_policies: Path):
    """``serve(token=..., extra=[...], **env)`` starts a real HTTP server and waits until it answers."""
    started: list[subprocess.Popen] = []
    count = itertools.count(1)

    def run(token: str | None = OPERATOR_TOKEN, extra: list[str] | None = None, **env: str) -> Served:
        n = next(count)
        db, log = tmp_path / f"state-{n}.db", tmp_path / f"server-{n}.log"
        if token:
            env["ESCALATION_MATRIX_TOKEN"] = token
        served = serve_http(["--policies", str(fake_policies), "serve", "--transport", "http", "--db", str(db),
                             *(extra or [])], server_env(**env), log, db=db, timeout=120)
        started.append(served.proc)
        return served

    yield run
    for proc in started:
        stop(proc)
