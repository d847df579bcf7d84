"""MCP round-trip benchmark against the real ``escalation-matrix serve`` process.

    .venv/bin/python benchmarks/bench_mcp.py [--calls 300] [--seconds 20] [--clients 8]

stdio: sequential warm tool calls (each a distinct request, so every call runs the model).
HTTP: ``--clients`` concurrent sessions calling for ``--seconds``; sustained calls/s and latency.
Targets: stdio p50 <= 25 ms, p99 <= 60 ms; HTTP >= 100 calls/s."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from mcp import Client, StdioServerParameters

CLI = str(Path(sys.executable).with_name("escalation-matrix"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ENV.pop("ESCALATION_MATRIX_TOKEN", None)
TOPICS = ["pricing page", "release notes", "onboarding email", "quarterly report", "support macro", "blog post",
          "landing page", "product tour", "FAQ entry", "status update"]


def request(i: int) -> str:
    return f"Write the {TOPICS[i % len(TOPICS)]} number {i} for the spring campaign"


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(label: str, ms: list[float], extra: str = "") -> None:
    print(f"{label:<34} n={len(ms):<6} p50={pct(ms, 50):6.1f} ms  p90={pct(ms, 90):6.1f} ms  "
          f"p99={pct(ms, 99):6.1f} ms  mean={statistics.fmean(ms):6.1f} ms {extra}")


async def timed(client: Client, tool: str, args: dict) -> float:
    start = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = (time.perf_counter() - start) * 1000
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content}")
    return elapsed


async def bench_stdio(db: Path, calls: int) -> None:
    params = StdioServerParameters(command=CLI, args=["serve", "--db", str(db)], env=ENV)
    async with Client(params, read_timeout_seconds=120) as client:
        for i in range(20):  # warm-up
            await timed(client, "classify", {"request": request(10_000 + i)})
        classify = [await timed(client, "classify", {"request": request(i)}) for i in range(calls)]
        escalate = [await timed(client, "escalate", {"conversation_id": f"bench-{i}", "request": request(i),
                                                     "question": f"Who is the audience for item {i}?"})
                    for i in range(calls)]
        repeat = [await timed(client, "escalate", {"conversation_id": "bench-0", "request": request(0),
                                                   "question": "Who is the audience for item 0?"})
                  for _ in range(calls)]
    report("stdio classify (new text)", classify)
    report("stdio escalate (new issue)", escalate)
    report("stdio escalate (repeat, cached)", repeat)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bench_http(db: Path, seconds: float, clients: int) -> None:
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--transport", "http", "--port", str(port), "--db", str(db)],
                            env=ENV, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        while True:
            try:
                httpx2.get(url, timeout=1)
                break
            except httpx2.TransportError:
                time.sleep(0.3)
        for tool, make in (("classify", lambda n: {"request": request(n)}),
                           ("escalate", lambda n: {"conversation_id": f"http-{n}", "request": request(n)})):
            latencies: list[float] = []
            counter = iter(range(10**9))

            async def worker(offset: int) -> None:
                async with Client(url) as client:
                    await timed(client, tool, make(10**8 + offset))  # warm this session
                    end = time.perf_counter() + seconds
                    while time.perf_counter() < end:
                        latencies.append(await timed(client, tool, make(next(counter) + offset * 10**6)))

            start = time.perf_counter()
            await asyncio.gather(*(worker(w + (1000 if tool == "escalate" else 0)) for w in range(clients)))
            elapsed = time.perf_counter() - start
            report(f"http {tool} ({clients} clients)", latencies, f" -> {len(latencies) / elapsed:.0f} calls/s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="sequential stdio calls per measurement")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each HTTP measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP sessions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench_stdio(Path(tmp) / "stdio.db", args.calls))
        asyncio.run(bench_http(Path(tmp) / "http.db", args.seconds, args.clients))


if __name__ == "__main__":
    main()
