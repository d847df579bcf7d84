"""Classifier speed and memory on this machine: warm single-request latency, batch throughput,
cold start and peak RSS, each against baselines measured in the same run: the bare model
encoding the same text (the floor no classifier on this model can beat) and the previous
classifier (kNN over exemplars on the frozen encoder, `method: knn`), on each encoder backend
(`backend: onnx`, ONNX Runtime, and `backend: torch`, sentence-transformers; `onnx-int8` in
--backends is the ONNX backend with `precision: int8`).

    .venv/bin/python benchmarks/bench_classify.py [--requests 300] [--batch 1000] [--backends onnx,torch]

Targets (2-core machine): warm p50 <= 15 ms, p99 <= 40 ms; batch >= 200 req/s;
cold start (import, model load, cached exemplars) <= 8 s; peak RSS <= 700 MB.
ONNX backend: warm p50 <= 5 ms, p99 <= 15 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHUNK = 256  # what `escalation-matrix classify --input` uses
REQUESTS = [
    "Write something for the website.",
    "Make this email shorter and add more detail about pricing.",
    "Draft terms of service for our affiliate program with automatic renewal clauses.",
    "Create a product bundle for the homeschool niche.",
    "Delete all customer email addresses from the database.",
    "Run a SQL query to calculate average order value from last month.",
    "Which format: list or paragraph?",
    "Summarise the quarterly report in five bullet points for the leadership team.",
    "How do I kill a Python process that hangs?",
    "Should we launch the new pricing in January or wait for the annual review in March, given churn?",
    "Translate the onboarding guide into Spanish and keep the product names in English.",
    "Send the customer's medical history to the whole support channel.",
]

COLD = """
import json, resource, sys, time
t0 = time.perf_counter()
from dataclasses import replace
from escalation_matrix.loader import load_policy
from escalation_matrix.classifier import Classifier
policy = load_policy()
policy = replace(policy,
                 classifier=policy.classifier.model_copy(update={{"method": {method!r}, **{settings!r}}}))
clf = Classifier(policy)
clf.classify("Write something for the website.")
ready = time.perf_counter() - t0
texts = {texts!r}
for i in range(200):
    clf.classify(texts[i % len(texts)])
clf.classify_many([texts[i % len(texts)] + f" ({{i}})" for i in range(1000)])
print(json.dumps({{"ready_s": ready, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch": "torch" in sys.modules}}))
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load_line(when: str) -> str:
    """The machine's load with the figures: a busy machine slows every number here."""
    one, five, fifteen = os.getloadavg()
    return f"load average at {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


def line(name: str, values_ms: list[float]) -> str:
    return (f"{name:<28} p50 {statistics.median(values_ms):6.2f} ms   p90 {pct(values_ms, 90):6.2f} ms   "
            f"p99 {pct(values_ms, 99):6.2f} ms   (n={len(values_ms)})")


def encoder_settings(backend: str) -> dict:
    """classifier.yaml values for a backend name: "onnx", "torch" or "onnx-int8" (`precision: int8`)."""
    name, _, precision = backend.partition("-")
    return {"backend": name, "precision": precision or "fp32"}


def with_method(policy, method: str, backend: str):
    from dataclasses import replace

    return replace(policy, classifier=policy.classifier.model_copy(update={"method": method, **encoder_settings(backend)}))


def measure(method: str, backend: str, args) -> dict:
    from escalation_matrix.classifier import Classifier
    from escalation_matrix.loader import load_policy

    def cold_run() -> dict:
        done = subprocess.run([sys.executable, "-c", COLD.format(texts=REQUESTS, method=method, settings=encoder_settings(backend))],
                              check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    # a first start fills the cache (the ONNX file, the exemplar vectors) and is not counted: the
    # figures are for every later start
    cold_run()
    cold = [cold_run() for _ in range(args.cold_runs)]
    clf = Classifier(with_method(load_policy(), method, backend))
    for text in REQUESTS:  # warm-up
        clf.classify(text)
    single, encode = [], []
    for i in range(args.requests):
        text = REQUESTS[i % len(REQUESTS)]
        t = time.perf_counter()
        clf.embedder.encode([text])
        encode.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        clf.classify(text)
        single.append((time.perf_counter() - t) * 1000)
    texts = [REQUESTS[i % len(REQUESTS)] + f" (item {i})" for i in range(args.batch)]
    t = time.perf_counter()
    for start in range(0, len(texts), CHUNK):
        clf.embedder.encode(texts[start : start + CHUNK])
    encode_rate = len(texts) / (time.perf_counter() - t)
    t = time.perf_counter()
    for start in range(0, len(texts), CHUNK):
        clf.classify_many(texts[start : start + CHUNK])
    batch_rate = len(texts) / (time.perf_counter() - t)
    return {"single": single, "encode": encode, "batch": batch_rate, "encode_rate": encode_rate, "cold": cold,
            "exemplars": len(clf.exemplars)}


def report(method: str, m: dict) -> None:
    single, encode, cold = m["single"], m["encode"], m["cold"]
    print(f"--- method/backend: {method} ({m['exemplars']} exemplars)")
    print(line("warm classify (1 request)", single))
    print(line("baseline: bare model encode", encode))
    if "/onnx" in method:  # the ONNX backend, either precision
        p50, p99 = statistics.median(single), pct(single, 99)
        print(f"{'':<28} target p50 <= 5 ms: {'met' if p50 <= 5 else 'NOT met'}, "
              f"p99 <= 15 ms: {'met' if p99 <= 15 else 'NOT met'}")
    print(f"{'':<28} ratio classify/encode p50 {statistics.median(single) / statistics.median(encode):.2f}x")
    print(f"{f'batch classify ({CHUNK}/chunk)':<28} {m['batch']:7.1f} req/s   baseline bare encode "
          f"{m['encode_rate']:7.1f} req/s   ratio {m['batch'] / m['encode_rate']:.2f}x")
    ready = [c["ready_s"] for c in cold]
    print(f"{'cold start to first answer':<28} median {statistics.median(ready):.2f} s   max {max(ready):.2f} s"
          f"   (n={len(ready)}, exemplar vectors cached)")
    print(f"{'peak RSS':<28} max {max(c['peak_rss_mb'] for c in cold):.0f} MB (cold start + 200 warm + 1000 batch)"
          f"   torch imported: {'yes' if any(c['torch'] for c in cold) else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--methods", default="trained,knn",
                        help="comma-separated; the first is the one under test, the others baselines")
    parser.add_argument("--backends", default="onnx,torch",
                        help="comma-separated encoder backends; the first is the one under test")
    args = parser.parse_args()
    methods, backends = args.methods.split(","), args.backends.split(",")
    runs = [f"{m}/{b}" for m in methods for b in backends]
    print(load_line("start"), flush=True)
    results = {run: measure(*run.split("/"), args) for run in runs}
    print(load_line("end"))
    for run in runs:
        report(run, results[run])

    def compare(x: str, y: str) -> None:
        a, b = results[x], results[y]
        print(f"--- {x} vs {y}: warm p50 ratio "
              f"{statistics.median(a['single']) / statistics.median(b['single']):.2f}x, p99 ratio "
              f"{pct(a['single'], 99) / pct(b['single'], 99):.2f}x, batch ratio {a['batch'] / b['batch']:.2f}x, "
              f"cold start ratio {statistics.median(c['ready_s'] for c in a['cold']) / statistics.median(c['ready_s'] for c in b['cold']):.2f}x, "
              f"peak RSS ratio {max(c['peak_rss_mb'] for c in a['cold']) / max(c['peak_rss_mb'] for c in b['cold']):.2f}x")

    for b in backends[1:]:  # backends compared per method
        for m in methods:
            compare(f"{m}/{backends[0]}", f"{m}/{b}")
    for m in methods[1:]:  # methods compared on the backend under test
        compare(f"{methods[0]}/{backends[0]}", f"{m}/{backends[0]}")


if __name__ == "__main__":
    main()
