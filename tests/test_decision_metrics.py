"""The decision-quality block of the report: escalation rate and trend, response time, override
rate, false-positive (unnecessary) and false-negative (missed) rates; in the report (text, CSV,
JSON through the CLI) and the ``escalation://reports/daily`` resource (real in-memory MCP client)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from mcp import Client

from escalation_matrix import adaptive
from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops.decision_metrics import trend_of
from escalation_matrix.ops.reports import build_report
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
OPTIONS = ["Deploy now", "Wait for Monday"]


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock):
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


@pytest.fixture
def story(guard, clock):
    """Four escalations: answered with the default after 2 min, overridden after 4 min, rejected
    after 6 min, one left open; six requests proceed; an operator reports one missed escalation."""
    ids = [guard.escalate(f"c{i}", "Deploy the new build", context=PROD, options=OPTIONS).escalation_id
           for i in range(4)]
    for i in range(6):
        guard.classify(f"Write a short poem number {i}")
    clock.at(minutes=2)
    guard.respond(ids[0], "Deploy now", role="agent", conversation_id="c0")
    clock.at(minutes=4)
    guard.respond(ids[1], "Wait for Monday", role="agent", conversation_id="c1", necessary=True)
    clock.at(minutes=6)
    guard.respond(ids[2], "Too risky", role="agent", conversation_id="c2", action="reject")
    with guard.store.transaction() as conn:
        adaptive.record_outcome(guard.store, conn, "missed", "operator", etype="decision")
    return ids


def test_the_report_carries_decision_quality(guard, policy, story):
    q = build_report(guard.store, policy, "daily").decision_quality
    assert q is not None
    decisions = build_report(guard.store, policy, "daily").decisions
    assert q.escalation_rate == pytest.approx(4 / decisions) and q.target_rate == 0.05
    assert q.answered == 3 and q.response_median_seconds == 240
    assert q.override_rate == pytest.approx(2 / 3)  # overridden and rejected; the default answer agrees
    assert q.structured == {"reject": 1}
    assert (q.necessary, q.unnecessary, q.missed) == (1, 1, 1)
    assert q.false_positive_rate == 0.5 and q.false_negative_rate == pytest.approx(1 / 5)


@pytest.mark.parametrize("rates, trend", [
    ([0.1, 0.08, 0.06, 0.04], "decreasing"),
    ([0.05, 0.05, 0.0501], "stable"),
    ([0.01, None, 0.05, 0.09], "increasing"),
    ([0.05, None], "insufficient_data"),
])
def test_trend_of_the_rate(rates, trend):
    assert trend_of(rates)[0] == trend


def test_cli_report_shows_it_in_text_csv_and_json(db_path, story, clock):
    def report(*args):
        result = CliRunner().invoke(main, ["report", "--date", "2026-03-02", *args, "--db", str(db_path)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    text = report()
    assert "decision quality" in text and "override rate 66.67%" in text
    assert "false positives 50.00%, false negatives 20.00%" in text
    assert "decision_quality,false_positive_rate,0.5" in report("--format", "csv")
    assert json.loads(report("--format", "json"))["decision_quality"]["missed"] == 1


async def test_the_report_resource_carries_it(guard, story):
    async with Client(build_server(guard=guard)) as client:
        body = json.loads((await client.read_resource("escalation://reports/daily")).contents[0].text)
    assert body["decision_quality"]["answered"] == 3
    assert body["decision_quality"]["trend"] in ("increasing", "decreasing", "stable", "insufficient_data")
