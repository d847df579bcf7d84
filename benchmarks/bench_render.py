"""Renderer speed: one escalation rendered as md, txt, html and the JSON card, from a tool result
with the request read from the state file. Prints p50/p99 per format.

    .venv/bin/python benchmarks/bench_render.py [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from escalation_matrix.loader import load_policy
from escalation_matrix.models import EscalationResult
from escalation_matrix.render import card, render
from escalation_matrix.store import Store


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="renders per format")
    args = parser.parse_args()
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        with store.transaction() as conn:
            esc_id = store.insert_escalation(conn, {
                "conversation_id": "bench", "task_id": "default", "type": "clarification",
                "trigger": "unclear_request", "severity": "L1", "request": "Write something for the website.",
                "question": "Which deliverable should I write?", "options": ["Product description", "Landing page copy"],
                "phrase": "Can you clarify what you want me to focus on so I can continue?"})
        result = EscalationResult(action="escalate", type="clarification", severity="L1", trigger="unclear_request",
                                  escalation_id=esc_id, question="Which deliverable should I write?",
                                  options=["Product description", "Landing page copy"],
                                  phrase="Can you clarify what you want me to focus on so I can continue?",
                                  instruction="Ask once and wait.")
        jobs = {fmt: (lambda fmt=fmt: render(result, fmt, policy, store=store)) for fmt in ("md", "txt", "html")}
        jobs["card"] = lambda: card(result, policy, store=store)
        print(f"{'format':<6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}  (n={args.n})")
        for name, job in jobs.items():
            job()  # warm up
            times = []
            for _ in range(args.n):
                started = time.perf_counter()
                job()
                times.append((time.perf_counter() - started) * 1000)
            print(f"{name:<6} {percentile(times, 0.5):>8.3f} {percentile(times, 0.99):>8.3f} {statistics.mean(times):>8.3f}")


if __name__ == "__main__":
    main()
