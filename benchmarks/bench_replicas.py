"""Server replicas on one PostgreSQL database against one server on a SQLite file, over HTTP.

    .venv/bin/python benchmarks/bench_replicas.py [--seconds 20] [--clients 12] [--replicas 3]

Three set-ups in one run, each a real ``escalation-matrix serve --transport http`` process per
replica with the real model: one process on a SQLite file (the baseline), one replica on
PostgreSQL, ``--replicas`` replicas on the same PostgreSQL database. ``--clients`` MCP sessions
call ``escalate`` for ``--seconds``, spread round-robin over the replicas (what a round-robin load
balancer does); every call is a new issue in its own conversation, so every call classifies,
writes a record, a task, a decision and audit entries (the write-heavy case). Prints calls/s and
p50/p90/p99 per set-up and the ratios against the SQLite baseline. The PostgreSQL server is a
throw-away one started here (Debian ``postgresql``; fsync off, synchronous commits)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from pg_cluster import Cluster  # noqa: E402

CLI = str(Path(sys.executable).with_name("escalation-matrix"))
TOKEN = "bench-token"
ADDRESS = re.compile(r"MCP at (http://[^\s]+?)/mcp\b")
ACTIONS = ["Delete every customer record in region", "Export the customer home addresses of region",
           "Drop the production orders table of region"]


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def serve(db: str, log: Path, state: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATION_MATRIX_")}
    env.update(HF_HUB_OFFLINE="1", ESCALATION_MATRIX_TOKEN=TOKEN, ESCALATION_MATRIX_AUDIT_KEY="bench-audit-key",
               XDG_STATE_HOME=str(state), ESCALATION_MATRIX_CACHE=str(state / "cache"))
    with open(log, "w") as err:
        proc = subprocess.Popen([CLI, "serve", "--transport", "http", "--port", "0", "--db", db], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        found = ADDRESS.search(log.read_text(errors="replace"))
        if found:
            try:
                httpx2.get(f"{found.group(1)}/mcp", timeout=2)
                return proc, found.group(1)
            except httpx2.TransportError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


async def drive(bases: list[str], clients: int, seconds: float, tag: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        async with Client(streamable_http_client(f"{bases[i % len(bases)]}/mcp", http_client=auth)) as session:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                request = f"{ACTIONS[n % len(ACTIONS)]} {i}-{n} right now"
                start = time.perf_counter()
                result = await session.call_tool("escalate", {"conversation_id": f"{tag}-{i}-{n}", "request": request})
                if result.is_error:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one(i) for i in range(clients)))
    return latencies, errors


def run(label: str, dbs: list[str], args: argparse.Namespace, work: Path) -> tuple[float, float, float]:
    procs = []
    try:
        bases = []
        for i, db in enumerate(dbs):
            proc, base = serve(db, work / f"{label.replace(' ', '_')}-{i}.log", work / "state")
            procs.append(proc)
            bases.append(base)
        asyncio.run(drive(bases, args.clients, 3, f"warm-{label}"))  # connections, pools, caches
        start = time.perf_counter()
        latencies, errors = asyncio.run(drive(bases, args.clients, args.seconds, label))
        elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    rate = len(latencies) / elapsed
    print(f"{label:<28} calls/s={rate:7.1f}  n={len(latencies):<6} p50={pct(latencies, 50):7.1f} ms  "
          f"p90={pct(latencies, 90):7.1f} ms  p99={pct(latencies, 99):7.1f} ms  "
          f"mean={statistics.fmean(latencies):7.1f} ms  errors={errors}", flush=True)
    return rate, pct(latencies, 50), pct(latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    one, five, fifteen = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load {one:.2f} {five:.2f} {fifteen:.2f}; {args.clients} clients, "
          f"{args.seconds:.0f} s per set-up, escalate with a new issue per call")
    with tempfile.TemporaryDirectory() as tmp, Cluster() as cluster:
        work = Path(tmp)
        base = run("sqlite, 1 process", [str(work / "state.db")], args, work)
        single = run("postgresql, 1 replica", [cluster.create_database("bench_one")], args, work)
        many = run(f"postgresql, {args.replicas} replicas", [cluster.create_database("bench_many")] * args.replicas,
                   args, work)
    for label, (rate, p50, p99) in (("postgresql, 1 replica", single), (f"postgresql, {args.replicas} replicas", many)):
        print(f"{label:<28} vs sqlite: calls/s x{rate / base[0]:.2f}, p50 x{p50 / base[1]:.2f}, p99 x{p99 / base[2]:.2f}")


if __name__ == "__main__":
    main()
