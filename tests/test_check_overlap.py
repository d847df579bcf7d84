"""scripts/check_overlap.py: the guard that keeps evaluation requests out of the shipped
exemplars and tests. Run as a user runs it, a real subprocess with the bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_overlap.py"
# Built from short words so that the script, which also scans test literals, never finds it here.
UNRELATED = " ".join(["purple", "walrus", "juggles", "seventeen", "quiet", "harmonicas"])


def check(tmp_path: Path, texts: list[str]) -> subprocess.CompletedProcess:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": "none"}) + "\n" for t in texts), encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_flags_an_evaluation_request_that_an_exemplar_copies(tmp_path):
    exemplar = yaml.safe_load((ROOT / "embeddings" / "scope.yaml").read_text(encoding="utf-8"))["exemplars"][20]
    done = check(tmp_path, [exemplar.rstrip(".") + " today.", UNRELATED])
    assert done.returncode == 1, done.stdout + done.stderr
    flagged = [line for line in done.stdout.splitlines() if line.startswith("NEAR-COPY")]
    assert any("embeddings/scope.yaml" in line for line in flagged), done.stdout
    assert not any("walrus" in line for line in flagged), done.stdout


@pytest.mark.slow
def test_passes_when_no_shipped_sentence_is_close(tmp_path):
    done = check(tmp_path, [UNRELATED])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "near-copies: 0" in done.stdout
