"""Daily, weekly and monthly reports on a small dataset whose figures are known by hand: rates per
severity against the seed 002 §8 targets with alert flags, counts by type and reason, resolution
time per severity and level, resolution methods and the trend; text, JSON and CSV agree; the PNG
chart is a real PNG."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from escalation_matrix.errors import InputError
from escalation_matrix.ops.records import Operations
from escalation_matrix.ops.report_format import chart, render_report
from escalation_matrix.ops.reports import build_report
from escalation_matrix.store import Store
from clocks import Clock

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

DAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)



@pytest.fixture(scope="module")
def known(tmp_path_factory, policy) -> Store:
    """March 10: 20 decisions, 3 escalated (L1, L1, L2); March 9: 10 decisions, 1 escalated (L1);
    February 27: 10 decisions, none escalated. Three records on March 10, resolved after 1 min,
    3 min and 10 min."""
    clock = Clock()
    store = Store(tmp_path_factory.mktemp("reports") / "known.db", clock=clock)

    def decisions(moment: datetime, escalated: list[str], total: int) -> None:
        clock.moment = moment
        with store.transaction() as conn:
            for severity in escalated:
                store.record_decision(conn, "escalate", "clarification", "escalate", severity=severity)
            for _ in range(total - len(escalated)):
                store.record_decision(conn, "classify", "none", "proceed")

    decisions(NOON, ["L1", "L1", "L2"], 20)
    decisions(NOON - timedelta(days=1), ["L1"], 10)
    decisions(datetime(2026, 2, 27, 8, tzinfo=timezone.utc), [], 10)
    ops = Operations(store, policy)
    clock.moment = NOON
    a = ops.create("Ambiguous request", type="clarification", severity="L1")["id"]
    b = ops.create("Ambiguous request", type="clarification", severity="L1")["id"]
    c = ops.create("Compliance concern", type="compliance", severity="L2", level=2)["id"]
    clock.moment = NOON + timedelta(minutes=1)
    ops.answer(a, "Go with option 1", by="ed")
    clock.moment = NOON + timedelta(minutes=3)
    ops.resolve(b, "fixed the product data", method="data correction")
    clock.moment = NOON + timedelta(minutes=10)
    ops.close(c, "refund approved", method="manual metadata", preventive_measures="rule", lessons_learned="ask")
    yield store
    store.close()


@pytest.fixture(scope="module")
def daily(known, policy):
    return build_report(known, policy, "daily", DAY)


def rate(report, name: str):
    return next(line for line in report.rates if line.name == name)


def resolution(report, name: str):
    return next(line for line in report.resolution if line.name == name)


def test_rates_per_severity_against_targets_with_alert_flags(daily):
    assert daily.decisions == 20
    assert (rate(daily, "total").rate, rate(daily, "total").status) == (0.15, "ALERT")  # alert above 10 %
    assert (rate(daily, "L1").rate, rate(daily, "L1").status) == (0.10, "above target")  # target 8, alert > 10
    assert (rate(daily, "L2").rate, rate(daily, "L2").status) == (0.05, "above target")  # target 3, alert > 5
    assert (rate(daily, "L3").rate, rate(daily, "L3").status) == (0.0, "ok")
    assert (rate(daily, "L4").target, rate(daily, "L4").alert_above) == (0.001, 0.005)
    assert daily.alerts == ["total rate 15.00% is above the alert threshold 10.00%"]


def test_counts_by_type_reason_level_and_resolution_method(daily):
    assert daily.records == 3
    assert daily.by_type == {"clarification": 2, "compliance": 1}
    assert daily.by_reason == {"Ambiguous request": 2, "Compliance concern": 1}
    assert daily.by_level == {"operational": 2, "engineering": 1}
    assert daily.by_source == {"manual": 3}
    assert daily.resolution_methods == {"data correction": 1, "manual metadata": 1}
    assert daily.open_now == 0


def test_resolution_time_per_severity_and_level_against_targets(daily):
    l1 = resolution(daily, "L1")  # 60 s and 180 s against a 2 min target
    assert (l1.resolved, l1.median_seconds, l1.target_seconds, l1.within_target) == (2, 120, 120, 0.5)
    l2 = resolution(daily, "L2")  # 10 min against 15 min
    assert (l2.resolved, l2.median_seconds, l2.target_seconds, l2.within_target) == (1, 600, 900, 1.0)
    operational = resolution(daily, "operational")
    assert (operational.resolved, operational.target_seconds, operational.within_target) == (2, 86400, 1.0)
    assert resolution(daily, "product").resolved == 0


def test_the_daily_trend_covers_the_last_fourteen_days(daily):
    assert len(daily.trend) == 14 and daily.trend[-1].start == "2026-03-10T00:00:00Z"
    assert [(p.decisions, p.escalations) for p in daily.trend[-2:]] == [(10, 1), (20, 3)]
    assert daily.trend[-2].rate == 0.1 and daily.trend[-1].by_severity["L2"] == 0.05
    assert daily.trend[0].rate is None


def test_weekly_and_monthly_periods(known, policy):
    weekly = build_report(known, policy, "weekly", DAY)
    assert (weekly.start, weekly.end) == ("2026-03-04T00:00:00Z", "2026-03-11T00:00:00Z")
    assert (weekly.decisions, rate(weekly, "total").escalations) == (30, 4)
    assert len(weekly.trend) == 8
    monthly = build_report(known, policy, "monthly", DAY)
    assert (monthly.start, monthly.end) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    assert (monthly.decisions, rate(monthly, "total").rate) == (30, 4 / 30)
    assert len(monthly.trend) == 31 and monthly.trend[8].decisions == 10
    february = build_report(known, policy, "monthly", date(2026, 2, 1))
    assert (february.decisions, february.records, rate(february, "total").status) == (10, 0, "ok")


def test_a_period_without_decisions_says_no_data(known, policy):
    empty = build_report(known, policy, "daily", date(2025, 6, 1))
    assert {line.status for line in empty.rates} == {"no data"} and empty.alerts == []


def test_an_unknown_period_is_refused(known, policy):
    with pytest.raises(InputError, match="daily, weekly or monthly"):
        build_report(known, policy, "hourly", DAY)


def test_text_json_and_csv_show_the_same_figures(daily):
    data = json.loads(render_report(daily, "json"))
    assert data["decisions"] == 20 and data["by_type"] == daily.by_type
    assert {r["name"]: r["rate"] for r in data["rates"]} == {r.name: r.rate for r in daily.rates}

    rows = list(csv.DictReader(io.StringIO(render_report(daily, "csv"))))
    rates = {r["name"]: (float(r["value"]), r["status"]) for r in rows if r["section"] == "rate"}
    assert rates == {r.name: (r.rate, r.status) for r in daily.rates}
    assert {r["name"]: int(r["value"]) for r in rows if r["section"] == "type"} == daily.by_type
    assert {r["name"]: int(r["value"]) for r in rows if r["section"] == "reason"} == daily.by_reason
    assert {r["name"]: int(r["value"]) for r in rows if r["section"] == "resolution_method"} == daily.resolution_methods
    assert len([r for r in rows if r["section"] == "trend_rate"]) == len(daily.trend)

    text = render_report(daily, "text")
    assert "Decisions evaluated: 20" in text
    assert "ALERT: total rate 15.00% is above the alert threshold 10.00%" in text
    total_line = next(line for line in text.splitlines() if line.startswith("total "))
    assert "15.00%" in total_line and "ALERT" in total_line
    for name, count in {**daily.by_type, **daily.by_reason}.items():
        assert any(line.strip().startswith(name) and f" {count} " in line for line in text.splitlines())


def test_the_chart_is_a_valid_png(daily, tmp_path: Path):
    import matplotlib.image

    path = chart(daily, tmp_path / "charts" / "rate.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100


@pytest.mark.slow
def test_a_filled_history_gives_a_monthly_report_near_the_ten_percent_rate(tmp_path: Path, policy):
    import subprocess
    import sys

    db = tmp_path / "filled.db"
    script = Path(__file__).resolve().parents[1] / "scripts" / "fill_db.py"
    subprocess.run([sys.executable, str(script), str(db), "--escalations", "600", "--days", "30", "--open", "20",
                    "--end", "2026-03-31T12:00:00Z"], check=True, capture_output=True)
    store = Store(db)
    report = build_report(store, policy, "monthly", date(2026, 3, 31))
    store.close()
    assert report.records > 400 and 0.07 < rate(report, "total").rate < 0.13
    assert sum(report.by_type.values()) == report.records and report.open_now >= 20
    assert resolution(report, "L1").resolved > 0


# --- reports that read right ---
def test_text_tables_keep_their_columns_aligned_with_long_reasons(tmp_path: Path, policy):
    clock = Clock(NOON)
    store = Store(tmp_path / "reasons.db", clock=clock)
    ops = Operations(store, policy)
    reasons = ["Short", "A reason that is much longer than the forty-four characters the column had",
               "x" * 90]
    for reason in reasons:
        ops.create(reason)
    text = render_report(build_report(store, policy, "daily", DAY), "text")
    store.close()
    lines = text.split("\nby reason\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(lines) == 3
    ends = {len(line.rstrip()) for line in lines}  # the share column ends in the same place on every row
    assert len(ends) == 1, lines
    counts = {line.index("  1  ") for line in lines if "  1  " in line}
    assert len(counts) == 1, lines
    assert any(line.strip().startswith("x" * 20) and "…" in line for line in lines)  # capped, not overflowing


def test_csv_status_column_holds_only_status_words(daily):
    rows = list(csv.DictReader(io.StringIO(render_report(daily, "csv"))))
    assert {r["status"] for r in rows} <= {"", "ok", "above target", "ALERT", "no data"}
    within = {r["name"]: r["value"] for r in rows if r["section"] == "resolution_within_target"}
    assert within["L1"] == "0.5" and within["L2"] == "1.0"  # L1: 1 min and 3 min against 2 min; L2: 10 of 15 min
    median = {r["name"]: r for r in rows if r["section"] == "resolution_median_seconds"}
    assert float(median["L2"]["value"]) == 600 and float(median["L2"]["target"]) == 900
    assert median["L2"]["status"] == "ok"
    decisions = {r["name"]: int(r["value"]) for r in rows if r["section"] == "trend_decisions"}
    assert decisions[NOON.date().isoformat() + "T00:00:00Z"] == 20


def test_the_chart_draws_days_without_data_as_gaps_and_keeps_the_legend_off_the_points(known, policy):
    import math

    import matplotlib.pyplot as plt

    from escalation_matrix.ops.report_format import figure

    report = build_report(known, policy, "daily", DAY)
    empty = [i for i, p in enumerate(report.trend) if not p.decisions]
    assert empty and len(empty) < len(report.trend)
    fig = figure(report)
    try:
        ax = fig.axes[0]
        total = ax.lines[0]
        ys = list(total.get_ydata())
        assert all(math.isnan(ys[i]) for i in empty)  # a gap, not 0 %
        assert ys[-1] == pytest.approx(15.0)
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        for line in ax.lines[:5]:
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                if not math.isnan(y):
                    px, py = ax.transData.transform((x, y))
                    assert not legend.contains(px, py), f"the legend covers {line.get_label()} at {x}"
        assert any(t.get_text().startswith("no data:") for t in ax.get_legend().get_texts())
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_fill_db_uses_the_policys_routing_levels(tmp_path: Path, policy, data_copy):
    import sqlite3
    import subprocess
    import sys

    ops_file = data_copy / "policies" / "operations.yaml"
    ops_file.write_text(ops_file.read_text().replace("response_target: 1w, assignee: product-team",
                                                     "response_target: 3d, assignee: product-owners"))
    script = Path(__file__).resolve().parents[1] / "scripts" / "fill_db.py"
    db = tmp_path / "filled.db"
    subprocess.run([sys.executable, str(script), str(db), "--escalations", "200", "--days", "10", "--open", "5",
                    "--end", "2026-03-31T12:00:00Z", "--policies", str(data_copy / "policies")],
                   check=True, capture_output=True)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT level, assignee, MIN(julianday(due_at) - julianday(created_at)), "
                        "MAX(julianday(due_at) - julianday(created_at)) FROM escalations GROUP BY 1, 2").fetchall()
    conn.close()
    by_level = {level: (assignee, round(lo, 6), round(hi, 6)) for level, assignee, lo, hi in rows}
    assert by_level[1] == ("operations-team", 1.0, 1.0)
    assert by_level[2] == ("engineering-team", 2.0, 2.0)
    assert by_level[3] == ("product-owners", 3.0, 3.0)
