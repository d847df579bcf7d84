"""Fixtures: ``fake_policies`` (the shipped policy with ``model: fake``) and ``serve`` (a real HTTP
server process on it; see ``serving``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
from serving import OPERATOR_TOKEN, ROOT, Served, free_port, server_env, start, stop


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

    def run(token: str | None = OPERATOR_TOKEN, extra: list[str] | None = None, **env: str) -> Served:
        port = free_port()
        db, log = tmp_path / f"state-{port}.db", tmp_path / f"server-{port}.log"
        if token:
            env["ESCALATION_MATRIX_TOKEN"] = token
        proc = start(["--policies", str(fake_policies), "serve", "--transport", "http", "--port", str(port),
                      "--db", str(db), *(extra or [])], server_env(**env), log)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                httpx2.get(f"{base}/mcp", timeout=2)
                return Served(base, port, db, log, proc)
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("HTTP server did not start within 120 s")
                time.sleep(0.2)

    yield run
    for proc in started:
        stop(proc)
