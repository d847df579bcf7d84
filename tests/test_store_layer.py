"""SQL lives in the store layer: no module above it reaches into the store's connection or runs
SQL on the connection a transaction yields (the store's named queries, ``queries/``, do)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "escalation_matrix"
STORE_LAYER = {"store.py", "pgsql.py"}
SQL = re.compile(r"_conn\(\)|\.execute\(|\.executemany\(|\.escalations\(")  # escalations(): a WHERE clause in SQL


def modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if p.parts[len(PACKAGE.parts)] != "queries" and str(p.relative_to(PACKAGE)) not in STORE_LAYER)


@pytest.mark.parametrize("module", modules())
def test_no_sql_outside_the_store_layer(module: str) -> None:
    found = [n for n, line in enumerate((PACKAGE / module).read_text().splitlines(), 1) if SQL.search(line)]
    assert not found, (f"{module} runs SQL or reaches into store._conn() on lines {found}: "
                       "add a named query to the store (server/escalation_matrix/queries/) and call it")


def test_the_scan_reads_the_modules_above_the_store() -> None:
    scanned = set(modules())
    assert {"guard.py", "adaptive.py", "preferences.py", "unusual.py", "ops/failsafe.py"} <= scanned
    assert not scanned & STORE_LAYER
