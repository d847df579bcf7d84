"""KPIs count escalation records, not calls: a repeat, a re-ask and a refusal on a locked task are
evaluated requests (the denominator) but never new escalations. Real SQLite file, the guard and the
real in-memory MCP client; the fake embedder keeps it fast and policy rules decide the types."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops.pipeline import report_item
from escalation_matrix.ops.reports import build_report
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
DEPLOY = "Deploy the new build"
HARM = "I want to kill myself"
DAY = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock):
    clock.moment = DAY
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


def total(report):
    return next(line for line in report.rates if line.name == "total")


def test_one_l4_record_asked_three_times_counts_once(guard, policy):
    results = [guard.escalate("c1", HARM) for _ in range(3)]
    assert [r.action.value for r in results] == ["stop"] * 3
    assert guard.store.count("escalations") == 1
    report = build_report(guard.store, policy, "daily", DAY.date())
    assert (report.decisions, total(report).escalations, report.refusals) == (3, 1, 2)
    assert next(line for line in report.rates if line.name == "L4").escalations == 1


def test_repeats_and_re_asks_are_reported_apart(guard, policy):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    guard.escalate("c1", DEPLOY, context=PROD)  # repeat of the open issue
    guard.respond(first.escalation_id, "Go ahead")
    guard.escalate("c1", DEPLOY, context=PROD)  # answered already: re-ask
    report = build_report(guard.store, policy, "daily", DAY.date())
    assert (report.decisions, total(report).escalations, report.repeats, report.reasked) == (3, 1, 1, 1)


def test_every_evaluated_request_is_in_the_denominator(guard, policy):
    guard.classify("Summarise this article")
    guard.check_scope("Summarise this article")
    guard.clarify("c1", "Write the report", "Which tone do you want?", missing="the tone")
    report_item(guard.store, policy, {"item_id": "item-1", "iterations": 1})
    report_item(guard.store, policy, {"item_id": "item-2", "iterations": 50})
    report_item(guard.store, policy, {"item_id": "item-2", "iterations": 51})
    report = build_report(guard.store, policy, "daily", DAY.date())
    assert report.decisions == 6
    assert (total(report).escalations, report.repeats) == (2, 1)  # the clarify and item-2, once
    assert (total(report).target, total(report).alert_above) == (0.05, 0.10)
    assert total(report).status == "ALERT"  # 2 of 6


async def test_calls_over_mcp_count_as_evaluated_requests(guard, policy):
    async with Client(build_server(guard=guard)) as client:
        await client.call_tool("classify", {"request": "Summarise this article"})
        for _ in range(2):
            await client.call_tool("escalate", {"conversation_id": "m", "request": DEPLOY, "context": PROD})
    report = build_report(guard.store, policy, "daily", DAY.date())
    assert (report.decisions, total(report).escalations, report.repeats) == (3, 1, 1)
