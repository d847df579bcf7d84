"""Replay of batching: a working day of questions agents put to a few people, through the real
conversation guard, the shipped policy and the fail-safe sweep every 30 s, on a clock that moves
with the questions. Each question comes in its own conversation, names its person in the context
and is asked as a decision (``type="decision"``, L2); a share of them are critical (production and
a security change) and must go out at once.

    .venv/bin/python benchmarks/bench_batching.py [--people 3] [--hours 8] [--rates 4,12,30]
                                                  [--critical 0.1] [--seed 7] [--model]

Per arrival rate (questions per person per hour, Poisson), two fresh databases: batching as the
policy ships it, and batching off. Printed: questions, notifications sent (one per escalation
sent at once, one per batch), notifications saved, items per batch, batches delivered full or at
the end of their window, the delay batching adds before a question reaches its person (median,
90th percentile, most), critical questions delayed (must be 0), and the time of one escalate call.
``--model`` uses the shipped model (default: the fast hashing test embedder; the type is given,
so the classifier decides nothing here)."""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from escalation_matrix.classifier import Classifier  # noqa: E402
from escalation_matrix.guard import ConversationGuard  # noqa: E402
from escalation_matrix.loader import load_policy  # noqa: E402
from escalation_matrix.ops.failsafe import sweep  # noqa: E402
from escalation_matrix.store import Store, parse_iso  # noqa: E402

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
SWEEP = timedelta(seconds=30)
CRITICAL = {"environment": "production", "security_impact": True, "reversible": False}
TOPICS = ["export worker", "billing job", "search index", "login page", "report mailer", "image cache", "audit log",
          "sync service", "webhook relay", "pricing table"]
ASKS = ["Which log level should the {t} use, info or debug?", "Should the {t} retry {n} or {m} times?",
        "Should the {t} run every {n} or every {m} minutes?", "Which team channel should the {t} alert, ops or dev?",
        "Should the {t} keep data for {n} or {m} days?"]


class Clock:
    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        return self.moment


def arrivals(args: argparse.Namespace, rate: float, rng: random.Random) -> list[tuple[datetime, str, bool]]:
    """(when, person, critical) for every question of the day, in time order."""
    out = []
    for p in range(args.people):
        t = 0.0
        while True:
            t += rng.expovariate(rate / 3600)
            if t >= args.hours * 3600:
                break
            out.append((T0 + timedelta(seconds=t), f"person-{p + 1}", rng.random() < args.critical))
    return sorted(out)


def replay(classifier: Classifier, policy, args: argparse.Namespace, rate: float) -> dict:
    rng = random.Random(args.seed)
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "state.db", clock=clock)
        guard = ConversationGuard(policy, classifier, store)
        next_sweep, calls, critical_ids = T0 + SWEEP, [], set()
        for i, (when, person, critical) in enumerate(arrivals(args, rate, rng)):
            while next_sweep <= when:
                clock.moment = next_sweep
                sweep(store, policy)
                next_sweep += SWEEP
            clock.moment = when
            n = rng.randint(2, 9)
            question = rng.choice(ASKS).format(t=f"{rng.choice(TOPICS)} #{i}", n=n, m=n * 2)
            started = time.perf_counter()
            result = guard.escalate(f"q-{i}", f"Configure the {question.split('the ')[1][:30]}", question=question,
                                    context={"person": person, **(CRITICAL if critical else {})}, type="decision")
            calls.append(time.perf_counter() - started)
            if critical:
                critical_ids.add(result.escalation_id)
        end = T0 + timedelta(hours=args.hours) + timedelta(seconds=policy.decisions.batching.window_seconds) + SWEEP
        while next_sweep <= end:
            clock.moment = next_sweep
            sweep(store, policy)
            next_sweep += SWEEP
        conn = store._conn()
        records = [dict(r) for r in conn.execute("SELECT id, created_at, batch_id FROM escalations")]
        batches = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM batches")}
        notices = conn.execute("SELECT COUNT(DISTINCT escalation_id || event) FROM outbox WHERE event IN "
                              "('created', 'batch_delivered')").fetchone()[0]
        delays = [(parse_iso(batches[r["batch_id"]]["delivered_at"]) - parse_iso(r["created_at"])).total_seconds()
                  for r in records if r["batch_id"] is not None]
        late_critical = sum(1 for r in records if r["id"] in critical_ids and r["batch_id"] is not None)
        store.close()
    delivered = [b for b in batches.values() if b["delivered_at"]]
    return {"questions": len(records), "notifications": notices, "batches": len(delivered),
            "full": sum(1 for b in delivered if b["delivered_why"] == "full"),
            "items": sum(b["items"] for b in delivered), "delays": delays, "late_critical": late_critical,
            "critical": len(critical_ids), "call_ms": statistics.median(calls) * 1000 if calls else 0.0}


def without_batching(folder: Path):
    """The shipped policy with batching turned off (a copy of the policy folder)."""
    copy = folder / "policies"
    shutil.copytree(ROOT / "policies", copy)
    path = copy / "decisions.yaml"
    text = path.read_text()
    assert "batching:\n  enabled: true" in text
    path.write_text(text.replace("batching:\n  enabled: true", "batching:\n  enabled: false"))
    return load_policy(copy, ROOT / "phrases", ROOT / "embeddings")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--hours", type=float, default=8)
    ap.add_argument("--rates", default="4,12,30", help="questions per person per hour, comma-separated")
    ap.add_argument("--critical", type=float, default=0.1, help="share of critical questions")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", action="store_true", help="the shipped model instead of the hashing test embedder")
    args = ap.parse_args()
    policy = load_policy()
    if args.model:
        classifier = Classifier(policy)
    else:
        from escalation_matrix.embedder import get_embedder

        classifier = Classifier(policy, embedder=get_embedder("fake"))
    b = policy.decisions.batching
    print(f"policy: batches of at most {b.max_items}, window {b.window_seconds:g} s, up to {b.max_severity.value}; "
          f"{args.people} people x {args.hours:g} h, {args.critical:.0%} critical, sweep every "
          f"{SWEEP.total_seconds():g} s, seed {args.seed}{'' if args.model else ', hashing test embedder'}")
    print("| questions / person / h | questions | notifications off -> on | saved | items per batch | "
          "full / window | added delay median / p90 / max | critical delayed | escalate call off / on |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        off_policy = without_batching(Path(folder))
        for rate in (float(r) for r in args.rates.split(",")):
            on, off = replay(classifier, policy, args, rate), replay(classifier, off_policy, args, rate)
            d = sorted(on["delays"])
            p90 = d[int(0.9 * (len(d) - 1))] if d else 0.0
            per = f"{on['items'] / on['batches']:.2f}" if on["batches"] else "-"
            print(f"| {rate:g} | {on['questions']} | {off['notifications']} -> {on['notifications']} | "
                  f"{off['notifications'] - on['notifications']} "
                  f"({(off['notifications'] - on['notifications']) / max(off['notifications'], 1):.0%}) | {per} | "
                  f"{on['full']} / {on['batches'] - on['full']} | "
                  f"{statistics.median(d) if d else 0:.0f} / {p90:.0f} / {max(d) if d else 0:.0f} s | "
                  f"{on['late_critical']} of {on['critical']} | {off['call_ms']:.1f} / {on['call_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
