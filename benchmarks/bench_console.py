"""Time the operator console page (GET /console) on a filled database.

    .venv/bin/python scripts/fill_db.py /tmp/ops.db --escalations 10000 --days 90
    .venv/bin/python benchmarks/bench_console.py /tmp/ops.db --runs 20

Prints p50/p90/max of the whole request (query, cards from the phrase templates, page) through
the real console routes behind the token middleware, in-process (Starlette TestClient)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from types import SimpleNamespace

from starlette.applications import Starlette
from starlette.testclient import TestClient

from escalation_matrix import console
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import BearerAuth
from escalation_matrix.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="a state file, e.g. one written by scripts/fill_db.py")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    store = Store(args.db)
    guard = SimpleNamespace(store=store, policy=load_policy())
    app = BearerAuth(Starlette(routes=console.routes(guard)), "bench-token")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/console?token=bench-token")
        assert page.status_code == 200, page.text[:300]
        open_count = page.text.count("<article ")
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            response = client.get("/console")
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(f"GET /console, {open_count} open escalations, {len(page.content) // 1024} KiB: "
          f"p50 {statistics.median(times):.0f} ms, p90 {p90:.0f} ms, max {times[-1]:.0f} ms ({args.runs} runs)",
          file=sys.stdout)


if __name__ == "__main__":
    main()
