"""Starting the real ``escalation-matrix serve --transport http`` process in tests.

The server is started with ``--port 0``: it binds a free port itself and prints the address it
listens on, which is read back here. (Picking a free port in the test and handing it to the server
leaves a window in which another process can take it.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("escalation-matrix"))
ADDRESS = re.compile(r"MCP at (http://[^\s]+?)/mcp\b")


@dataclass
class Served:
    base: str
    port: int
    db: Path | None
    log: Path
    proc: subprocess.Popen

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any ESCALATION_MATRIX_* setting (the cache dir kept),
    the package from this checkout, no model downloads; plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATION_MATRIX_") or k == "ESCALATION_MATRIX_CACHE"}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "server"), **extra)
    return env


def start(args: list[str], env: dict[str, str], log: Path, stdout: int = subprocess.DEVNULL) -> subprocess.Popen:
    """``escalation-matrix ARGS`` with stderr to ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen([CLI, *args], env=env, stdout=stdout, stderr=err)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_http(args: list[str], env: dict[str, str], log: Path, *, db: Path | None = None, probe: str = "/mcp",
               timeout: float = 300, stdout: int = subprocess.DEVNULL) -> Served:
    """Start ``escalation-matrix ARGS --port 0`` (ARGS include ``serve --transport http``), wait until
    it answers at ``probe`` and return where it listens. Fails the test, with the server's stderr,
    if it exits or does not answer within ``timeout`` seconds; stops it then."""
    proc = start([*args, "--port", "0"], env, log, stdout)
    deadline = time.monotonic() + timeout
    base = None
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"HTTP server did not start within {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")
            if base is None:
                found = ADDRESS.search(log.read_text(errors="replace"))
                base = found.group(1) if found else None
            if base is not None:
                try:
                    httpx2.get(f"{base}{probe}", timeout=2)
                    return Served(base, int(base.rsplit(":", 1)[1]), db, log, proc)
                except httpx2.TransportError:
                    pass
            time.sleep(0.2)
    except BaseException:
        stop(proc)
        raise


def stdio_client(db: Path, read_timeout: float = 900, **env: str) -> Client:
    """An MCP client on a new ``escalation-matrix serve --db DB`` process over stdio (``env``: more
    settings for it). The first call that classifies carries the model load (the server loads it
    in the background)."""
    return Client(StdioServerParameters(command=CLI, args=["serve", "--db", str(db)], env=server_env(**env)),
                  read_timeout_seconds=read_timeout)


async def call(client: Client, tool: str, **args) -> dict:
    """A tool call that must succeed; its structured result."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content
