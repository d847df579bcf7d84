"""The wheel carries the data folders as defaults, and an installed copy finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    return next(out.glob("escalation_matrix-*.whl"))


@pytest.mark.slow
def test_wheel_ships_policies_phrases_and_exemplars(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("policies", "phrases", "embeddings"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert shipped, folder
        assert {f"escalation_matrix/_data/{name}" for name in shipped} <= names
    assert "escalation_matrix/schemas/card.schema.json" in names


@pytest.mark.slow
def test_installed_package_loads_its_bundled_defaults(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("from escalation_matrix.paths import DataPaths; from escalation_matrix.loader import load_policy;"
            "p = load_policy(); print(p.paths.policies); print(len(p.exemplars))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    where, count = proc.stdout.split()
    assert Path(where) == target / "escalation_matrix" / "_data" / "policies"
    assert int(count) > 100
