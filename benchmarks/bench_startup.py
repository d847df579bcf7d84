"""Start-up benchmark: how soon a freshly started ``escalation-matrix serve`` (stdio) answers.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]

Each run starts a new server process and measures, from the moment the process is spawned:
initialize done, tools/list answered, and the first classify answered (which waits for the model,
loaded in the background). Prints the median and the worst of each. Target: tools/list <= 1.5 s."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

CLI = str(Path(sys.executable).with_name("escalation-matrix"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ENV.pop("ESCALATION_MATRIX_TOKEN", None)


async def one_run(db: Path) -> tuple[float, float, float]:
    params = StdioServerParameters(command=CLI, args=["serve", "--db", str(db)], env=ENV)
    start = time.perf_counter()
    async with Client(params, read_timeout_seconds=300) as client:
        initialized = time.perf_counter() - start
        tools = await client.list_tools()
        listed = time.perf_counter() - start
        assert any(t.name == "classify" for t in tools.tools)
        result = await client.call_tool("classify", {"request": "Delete the production database"})
        classified = time.perf_counter() - start
        if result.is_error:
            raise SystemExit(f"classify failed: {result.content}")
    return initialized, listed, classified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            rows.append(asyncio.run(one_run(Path(tmp) / f"run{i}.db")))
    for name, values in zip(("initialize", "tools/list", "first classify"), zip(*rows)):
        print(f"time to {name:<15} median {statistics.median(values):6.2f} s   worst {max(values):6.2f} s"
              f"   (n={len(values)})")
    print("target: tools/list <= 1.5 s:", "met" if statistics.median([r[1] for r in rows]) <= 1.5 else "NOT met")


if __name__ == "__main__":
    main()
