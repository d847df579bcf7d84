"""MCP round-trip benchmark against the real ``escalation-matrix serve`` process.

    .venv/bin/python benchmarks/bench_mcp.py [--calls 300] [--seconds 20] [--clients 8] [--backends onnx,torch]

stdio, once per encoder backend (`backend:` in classifier.yaml, set on a copy of the policy;
`onnx-int8` is the ONNX backend with `precision: int8`; `onnx+cosine` the ONNX backend without the
same-issue pair model, `same_issue_model: cosine`):
process start -> first `tools/list` and -> first classification, sequential warm tool calls (each
a distinct request, so every call runs the model) against a bare `tools/list` round trip (the
floor: the same transport without the model), and the server's resident memory.
HTTP (first backend): ``--clients`` concurrent sessions calling for ``--seconds``.
Targets: stdio p50 <= 25 ms, p99 <= 60 ms; on ONNX: classify p50 within 2x of `tools/list`, start
-> first classification <= 3 s, server RSS <= 350 MB; HTTP >= 100 calls/s."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
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


def load_line(when: str) -> str:
    """The machine's load with the figures: a busy machine slows every number here."""
    one, five, fifteen = os.getloadavg()
    return f"load average at {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


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


def policy_with_backend(backend: str, folder: Path) -> dict[str, str]:
    """The environment of a server whose classifier.yaml says ``backend: <backend>``; a ``+cosine``
    suffix (e.g. ``onnx+cosine``) also sets ``same_issue_model: cosine`` in conversation.yaml (no
    same-issue pair model loaded: what it costs, in the same run)."""
    from escalation_matrix.paths import DataPaths

    shutil.copytree(DataPaths.resolve().policies, folder)
    backend, cosine, _ = backend.partition("+cosine")
    if cosine:
        conversation = folder / "conversation.yaml"
        lines = [line for line in conversation.read_text(encoding="utf-8").splitlines()
                 if not line.startswith("same_issue_model:")]
        conversation.write_text("\n".join([*lines, "same_issue_model: cosine", ""]), encoding="utf-8")
    config = folder / "classifier.yaml"
    name, _, precision = backend.partition("-")  # "onnx-int8": the ONNX backend, precision: int8
    lines = [line for line in config.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("backend:", "precision:"))]
    config.write_text("\n".join([*lines, f"backend: {name}", f"precision: {precision or 'fp32'}", ""]), encoding="utf-8")
    return {**ENV, "ESCALATION_MATRIX_POLICIES": str(folder)}


def server_memory() -> dict[str, float]:
    """Resident and peak resident memory (MB) of this process's child server."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            status = (stat.parent / "status").read_text()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and "escalation" in (stat.parent / "cmdline").read_text(errors="replace"):
            values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            return {k: int(values[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
    return {"VmRSS": float("nan"), "VmHWM": float("nan")}


async def bench_stdio(db: Path, calls: int, env: dict[str, str] | None = None, label: str = "") -> dict:
    params = StdioServerParameters(command=CLI, args=["serve", "--db", str(db)], env=env or ENV)
    start = time.perf_counter()
    async with Client(params, read_timeout_seconds=120) as client:
        await client.list_tools()
        to_list = time.perf_counter() - start
        await timed(client, "classify", {"request": request(99_999)})
        to_first = time.perf_counter() - start
        for i in range(20):  # warm-up
            await timed(client, "classify", {"request": request(10_000 + i)})
        classify = [await timed(client, "classify", {"request": request(i)}) for i in range(calls)]
        escalate = [await timed(client, "escalate", {"conversation_id": f"bench-{i}", "request": request(i),
                                                     "question": f"Who is the audience for item {i}?"})
                    for i in range(calls)]
        repeat = [await timed(client, "escalate", {"conversation_id": "bench-0", "request": request(0),
                                                   "question": "Who is the audience for item 0?"})
                  for _ in range(calls)]
        bare = []
        for _ in range(calls):
            t = time.perf_counter()
            await client.list_tools()
            bare.append((time.perf_counter() - t) * 1000)
        memory = server_memory()
    print(f"--- stdio{label}: start -> tools/list {to_list:.2f} s, -> first classification {to_first:.2f} s; "
          f"server RSS {memory['VmRSS']:.0f} MB (peak {memory['VmHWM']:.0f} MB)")
    report("stdio tools/list (bare round trip)", bare)
    report("stdio classify (new text)", classify,
           f" ({pct(classify, 50) / pct(bare, 50):.1f}x tools/list p50)")
    report("stdio escalate (new issue)", escalate)
    report("stdio escalate (repeat, cached)", repeat)
    return {"start_s": to_first, "classify_p50": pct(classify, 50), "bare_p50": pct(bare, 50), **memory}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bench_http(db: Path, seconds: float, clients: int, env: dict[str, str] | None = None) -> None:
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--transport", "http", "--port", str(port), "--db", str(db)],
                            env=env or ENV, stderr=subprocess.DEVNULL)
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
    parser.add_argument("--backends", default="onnx,torch", help="encoder backends measured over stdio, in turn")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurement")
    args = parser.parse_args()
    print(load_line("start"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for turn, backend in enumerate(args.backends.split(",")):  # a backend may be named twice (alternated)
            env = policy_with_backend(backend, Path(tmp) / f"policies-{turn}-{backend}")
            # a first start builds the ONNX encoder and the exemplar vectors into the cache: the
            # figures are for a start with the cache in place, as every start after the first
            asyncio.run(bench_stdio(Path(tmp) / f"warmup-{turn}-{backend}.db", 1, env, f" [{backend}, filling the cache]"))
            results[backend if backend not in results else f"{backend} ({turn + 1})"] = asyncio.run(
                bench_stdio(Path(tmp) / f"stdio-{turn}-{backend}.db", args.calls, env, f" [backend: {backend}]"))
        if len(results) > 1:
            names = list(results)
            a, b = results[names[0]], results[names[1]]
            print(f"--- {names[0]} vs {names[1]}: start {a['start_s']:.2f} s vs {b['start_s']:.2f} s, classify p50 "
                  f"{a['classify_p50']:.1f} vs {b['classify_p50']:.1f} ms, RSS {a['VmRSS']:.0f} vs {b['VmRSS']:.0f} MB")
        for name, r in results.items():
            ratio = r["classify_p50"] / r["bare_p50"]
            print(f"targets [{name}]: classify p50 {ratio:.1f}x tools/list (<= 2x: {met(ratio <= 2)}), "
                  f"start -> first classification {r['start_s']:.2f} s (<= 3 s: {met(r['start_s'] <= 3)}), "
                  f"server RSS {r['VmRSS']:.0f} MB (<= 350 MB: {met(r['VmRSS'] <= 350)})")
        if not args.no_http:
            http_env = policy_with_backend(args.backends.split(",")[0], Path(tmp) / "policies-http")
            asyncio.run(bench_http(Path(tmp) / "http.db", args.seconds, args.clients, http_env))
    print(load_line("end"))


if __name__ == "__main__":
    main()
