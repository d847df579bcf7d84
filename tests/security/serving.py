"""Helpers for the real `escalation-matrix serve --transport http` process, started on a copy of
the shipped policy whose classifier uses the deterministic fake embedder: the HTTP stack, the
console, the store and the sweeper are all real, and a server starts in about a second instead of
loading the model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("escalation-matrix"))
OPERATOR_TOKEN = "operator-token-5f0c9a1d"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    base: str
    port: int
    db: Path
    log: Path
    proc: subprocess.Popen

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATION_MATRIX_") or k == "ESCALATION_MATRIX_CACHE"}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "server"), **extra)
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=err)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
