"""Operations at scale: fill a database with escalation history (scripts/fill_db.py), then time the
monthly report (build + text/JSON/CSV render; target <= 2 s) and the fail-safe sweep (target
<= 1 s): a catch-up sweep on a fresh copy of the file, where every open escalation has stages due,
and a steady sweep, where nothing is due. Prints median/p90/max per measurement.

    .venv/bin/python benchmarks/bench_ops.py [--escalations 10000] [--days 90] [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from escalation_matrix.loader import load_policy
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.ops.report_format import render_report
from escalation_matrix.ops.reports import build_report
from escalation_matrix.store import Store

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 3, 31, 12, 0, tzinfo=timezone.utc)


def summary(name: str, values: list[float], target: float | None = None) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    verdict = "" if target is None else ("  ok" if ordered[-1] <= target else f"  OVER TARGET {target:g} s")
    return (f"{name:<34} n={len(values):<3} median {statistics.median(ordered) * 1000:8.1f} ms   "
            f"p90 {p90 * 1000:8.1f} ms   max {ordered[-1] * 1000:8.1f} ms{verdict}")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--escalations", type=int, default=10_000, help="escalations to write (default 10000)")
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per measurement (default 10)")
    args = parser.parse_args()
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        filled = Path(tmp) / "filled.db"
        began = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fill_db.py"), str(filled), "--escalations",
                        str(args.escalations), "--days", str(args.days), "--end", END.isoformat()], check=True)
        fill_seconds = time.perf_counter() - began
        store = Store(filled, clock=lambda: END)
        conn = store._conn()
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("escalations", "decisions", "audit")}
        store.close()
        print(f"fill: {counts['escalations']} escalations, {counts['decisions']} decisions, {counts['audit']} audit "
              f"entries over {args.days} days in {fill_seconds:.1f} s (scripts/fill_db.py, incl. start-up)")

        store = Store(filled, clock=lambda: END)
        month = END.date()
        report = build_report(store, policy, "monthly", month)
        print(f"monthly report {report.start[:10]}..{report.end[:10]}: {report.decisions} decisions, "
              f"{report.records} records, total rate {report.rates[0].rate:.2%}")
        lines = [summary("monthly report (build)", timed(lambda: build_report(store, policy, "monthly", month),
                                                         args.runs), 2.0)]
        for fmt in ("text", "json", "csv"):
            lines.append(summary(f"monthly report (build + {fmt})", timed(
                lambda: render_report(build_report(store, policy, "monthly", month), fmt), args.runs), 2.0))
        lines.append(summary("weekly report (build)", timed(lambda: build_report(store, policy, "weekly", month),
                                                            args.runs)))

        catch_up, transitions = [], 0
        for i in range(args.runs):
            copy = Path(tmp) / f"sweep-{i}.db"
            shutil.copy(filled, copy)
            fresh = Store(copy, clock=lambda: END)
            began = time.perf_counter()
            result = sweep(fresh, policy, END + timedelta(days=2))
            catch_up.append(time.perf_counter() - began)
            transitions = len(result.transitions)
            fresh.close()
            copy.unlink()
        lines.append(summary(f"sweep, catch-up ({transitions} stages due)", catch_up, 1.0))
        sweep(store, policy, END + timedelta(days=2))
        steady = timed(lambda: sweep(store, policy, END + timedelta(days=2)), args.runs)
        open_now = sweep(store, policy, END + timedelta(days=2)).open
        lines.append(summary(f"sweep, steady ({open_now} open, none due)", steady, 1.0))
        store.close()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
