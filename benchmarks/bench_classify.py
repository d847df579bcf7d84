"""Classifier speed and memory on this machine: warm single-request latency, batch throughput,
cold start and peak RSS, each against a baseline measured in the same run (the bare model
encoding the same text, which is the floor no classifier on this model can beat).

    .venv/bin/python benchmarks/bench_classify.py [--requests 300] [--batch 1000]

Targets (2-core machine): warm p50 <= 15 ms, p99 <= 40 ms; batch >= 200 req/s;
cold start (import, model load, cached exemplars) <= 8 s; peak RSS <= 700 MB.
"""

from __future__ import annotations

import argparse
import json
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
import json, resource, time
t0 = time.perf_counter()
from escalation_matrix.loader import load_policy
from escalation_matrix.classifier import Classifier
clf = Classifier(load_policy())
clf.classify("Write something for the website.")
ready = time.perf_counter() - t0
texts = {texts!r}
for i in range(200):
    clf.classify(texts[i % len(texts)])
clf.classify_many([texts[i % len(texts)] + f" ({{i}})" for i in range(1000)])
print(json.dumps({{"ready_s": ready, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def line(name: str, values_ms: list[float]) -> str:
    return (f"{name:<28} p50 {statistics.median(values_ms):6.2f} ms   p90 {pct(values_ms, 90):6.2f} ms   "
            f"p99 {pct(values_ms, 99):6.2f} ms   (n={len(values_ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()

    cold = [json.loads(subprocess.run([sys.executable, "-c", COLD.format(texts=REQUESTS)], check=True,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(args.cold_runs)]

    from escalation_matrix.classifier import Classifier
    from escalation_matrix.loader import load_policy

    clf = Classifier(load_policy())
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

    print(f"exemplars: {len(clf.exemplars)}, method: {clf.settings.method}, model: {clf.settings.model}")
    print(line("warm classify (1 request)", single))
    print(line("baseline: bare model encode", encode))
    print(f"{'':<28} ratio classify/encode p50 {statistics.median(single) / statistics.median(encode):.2f}x")
    print(f"{f'batch classify ({CHUNK}/chunk)':<28} {batch_rate:7.1f} req/s   baseline bare encode {encode_rate:7.1f} req/s"
          f"   ratio {batch_rate / encode_rate:.2f}x")
    ready = [c["ready_s"] for c in cold]
    print(f"{'cold start to first answer':<28} median {statistics.median(ready):.2f} s   max {max(ready):.2f} s"
          f"   (n={len(ready)}, exemplar vectors cached)")
    print(f"{'peak RSS':<28} max {max(c['peak_rss_mb'] for c in cold):.0f} MB (cold start + 200 warm + 1000 batch)")


if __name__ == "__main__":
    main()
