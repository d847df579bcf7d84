"""Fill a database with realistic escalation history for reports and benchmarks.

    .venv/bin/python scripts/fill_db.py /tmp/ops-bench.db --escalations 10000 --days 90

Writes ~10 decisions per escalation (so the total rate sits near the 10 % target), escalation
records over the last ``--days`` days with seed-002 severities, routing levels, reasons, answers
and resolutions (resolution times drawn around the response targets), and their audit entries.
Each record's due time and assignee come from its routing level in the policy's operations.yaml
(``--policies`` for another policy folder). The newest ``--open`` escalations stay open so the
fail-safe sweep has real work."""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from escalation_matrix.loader import load_policy
from escalation_matrix.ops_policy import operations_policy
from escalation_matrix.store import Store, iso

SEVERITIES = [("L1", 0.62), ("L2", 0.27), ("L3", 0.10), ("L4", 0.01)]
TYPES = {"L1": [("clarification", "unclear_request"), ("conflict", "conflicting_instructions"),
                ("context", "missing_information")],
         "L2": [("decision", "requires_judgment"), ("compliance", "compliance_concern"), ("scope", "exceeds_scope"),
                ("technical", "technical_limitation")],
         "L3": [("safety", "sensitive_information"), ("compliance", "legal_exposure"), ("pattern", "repeated_issue")],
         "L4": [("safety", "harmful_intent")]}
REASONS = ["Ambiguous request", "Conflicting instructions", "Missing information", "Requires judgment",
           "Compliance concern", "Exceeds scope", "Sensitive information", "iteration limit reached",
           "consecutive processing failures", "critical data quality issue", "system error",
           "low confidence after several iterations"]
METHODS = ["manual metadata", "data correction", "brand splitting", "algorithm update", "answered"]
# Typical time to an answer per severity, in seconds (log-normal around these).
RESOLVE = {"L1": 90, "L2": 600, "L3": 4 * 3600, "L4": 300}
TOOLS = ["escalate", "clarify", "check_scope", "classify"]


class Clock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def fill(path: Path, escalations: int, days: int, seed: int = 7, end: datetime | None = None,
         open_count: int = 200, policies: str | None = None) -> dict[str, int]:
    rng = random.Random(seed)
    levels = operations_policy(load_policy(policies)).levels  # response target and assignee per level
    end = end or datetime.now(timezone.utc).replace(microsecond=0)
    start = end - timedelta(days=days)
    clock = Clock(start)
    store = Store(path, clock=clock)
    moments = sorted(start + timedelta(seconds=rng.uniform(0, days * 86400)) for _ in range(escalations))
    decisions: list[tuple] = []
    counts = {"escalations": 0, "decisions": 0, "open": 0}
    with store.transaction() as conn:
        for i, created in enumerate(moments):
            clock.moment = created
            severity = rng.choices([s for s, _ in SEVERITIES], [w for _, w in SEVERITIES])[0]
            etype, trigger = rng.choice(TYPES[severity])
            level = 1 if severity in ("L1", "L2") and rng.random() < 0.8 else rng.choice([2, 2, 3])
            level = level if level in levels else min(levels)
            source = rng.choices(["agent", "pipeline", "manual"], [0.8, 0.15, 0.05])[0]
            conv, task = f"conv-{i // 4}", f"task-{i % 7}"
            fields = {"conversation_id": conv, "task_id": task, "source": source, "type": etype, "trigger": trigger,
                      "severity": severity, "level": level, "assignee": levels[level].assignee, "status": "open",
                      "reason": rng.choice(REASONS), "request": f"Request {i}", "question": f"Question {i}?",
                      "severity_at": iso(created), "due_at": iso(created + levels[level].response_target)}
            esc_id = store.insert_escalation(conn, fields)
            store.audit(conn, "escalation_created", source, escalation_id=esc_id, conversation_id=conv,
                        task_id=task, data={"severity": severity, "level": level})
            decisions.append((iso(created), rng.choice(TOOLS), conv, task, etype, severity, "escalate", esc_id))
            for _ in range(rng.randint(6, 12)):  # the proceed decisions around it: rate near 10 %
                at = created + timedelta(seconds=rng.uniform(-3600, 3600))
                decisions.append((iso(min(max(at, start), end)), rng.choice(TOOLS), conv, task, "none", None,
                                  "proceed", None))
            took = timedelta(seconds=rng.lognormvariate(0, 0.8) * RESOLVE[severity])
            if i >= escalations - open_count or created + took > end:
                counts["open"] += 1
                continue
            clock.moment = created + took
            status = rng.choices(["answered", "resolved", "closed"], [0.3, 0.2, 0.5])[0]
            changes = {"status": status, "answer": "Go with option 1", "answered_by": levels[level].assignee,
                       "answered_at": iso(clock.moment)}
            if status != "answered":
                changes.update(resolution="Handled", resolution_method=rng.choice(METHODS))
            if status == "closed":
                changes.update(closed_at=iso(clock.moment), closed_by=levels[level].assignee,
                               preventive_measures="Added a rule", lessons_learned="Documented")
            store.update_escalation(conn, esc_id, **changes)
            store.audit(conn, f"escalation_{status}", levels[level].assignee, escalation_id=esc_id)
        conn.executemany("INSERT INTO decisions (at, tool, conversation_id, task_id, type, severity, action, "
                         "escalation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", decisions)
    counts["escalations"] = len(moments)
    counts["decisions"] = len(decisions)
    store.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path, help="SQLite file to create (must not exist yet).")
    parser.add_argument("--escalations", type=int, default=10_000, help="Escalation records to write (default 10000).")
    parser.add_argument("--days", type=int, default=90, help="Spread them over this many days up to now (default 90).")
    parser.add_argument("--open", type=int, default=200, help="The newest N escalations stay open (default 200).")
    parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
    parser.add_argument("--end", help="Last moment of the history, ISO time (default now).")
    parser.add_argument("--policies", help="Policy folder whose routing levels to use (default: the shipped one).")
    args = parser.parse_args(argv)
    if args.db.exists():
        parser.error(f"{args.db} exists; pick a new file so existing state is never overwritten")
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00")) if args.end else None
    if end is not None and end.tzinfo is None:  # a bare time is UTC, not the machine's local time
        end = end.replace(tzinfo=timezone.utc)
    began = time.perf_counter()
    counts = fill(args.db, args.escalations, args.days, args.seed, end, args.open, args.policies)
    print(f"wrote {counts['escalations']} escalations ({counts['open']} still open) and {counts['decisions']} "
          f"decisions over {args.days} days to {args.db} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
