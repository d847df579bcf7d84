"""Time the operator console pages (queue, filters, search, history, one escalation, dashboard) on a filled database.

    .venv/bin/python scripts/fill_db.py /tmp/ops.db --escalations 10000 --days 90
    .venv/bin/python benchmarks/bench_console.py /tmp/ops.db --runs 20

Prints p50/p90/max of the whole request (query, cards from the phrase templates, page) per page
through the real console routes behind the token middleware, in-process (Starlette TestClient)."""

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
        some_id = store.escalations("1=1", (), order="created_at", limit=1)[0]["id"]
        paths = ["/console", "/console?page=8", "/console?severity=L3&overdue=1", "/console?q=brand",
                 "/console/history", "/console/history?page=100", "/console/history?q=Compliance",
                 f"/console/escalations/{some_id}", "/console/dashboard", "/console/dashboard?period=monthly"]
        for path in paths:
            times, size = [], 0
            for _ in range(args.runs):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (path, response.status_code)
                size = len(response.content)
            times.sort()
            p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
            print(f"GET {path:<38} {size // 1024:>4} KiB: p50 {statistics.median(times):4.0f} ms, "
                  f"p90 {p90:4.0f} ms, max {times[-1]:4.0f} ms ({args.runs} runs)", file=sys.stdout)

if __name__ == "__main__":
    main()
