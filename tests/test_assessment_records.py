"""Why an escalation was escalated, kept on its record (criticality, decision type, category, the
rule that escalated) and shown by `show`, the MCP conversation resource and the console page; and
the console's "Was this escalation needed?" form, whose outcome the adaptive target and the
dashboard's decision-quality panel count. Real store (SQLite file and PostgreSQL), real HTTP app,
fake embedder."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from mcp import Client
from starlette.testclient import TestClient

from escalation_matrix import console
from escalation_matrix.adaptive import outcomes
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_http_app, build_server
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store
from test_cli_core import run

pytestmark = pytest.mark.backends

TOKEN = "assess-token-7c1d"
BASE = "http://127.0.0.1:8765"
SECURITY = {"decision_type": "security", "impact_level": "high"}
CRITICAL = {"environment": "production", "security_impact": True}


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock) -> ConversationGuard:
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


@pytest.fixture
def ops(guard) -> Operations:
    return Operations(guard.store, guard.policy)


@pytest.fixture
def client(guard):
    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE) as c:
        assert c.get(f"/console?token={TOKEN}").status_code == 200
        yield c


def page_csrf(client: TestClient, esc_id: str) -> str:
    """The CSRF token of this browser's session (the escalation page's form carries it until an
    outcome is marked; the console page always does)."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(f"/console/escalations/{esc_id}").text)
    found = found or re.search(r'name="csrf" value="([^"]+)"', client.get("/console").text)
    assert found, "no CSRF field"
    return found.group(1)


def mark(client: TestClient, esc_id: str, verdict: str, **fields: str):
    return client.post(f"/console/escalations/{esc_id}/outcome",
                       data={"csrf": page_csrf(client, esc_id), "outcome": verdict, **fields})


def flash(page: str) -> str:
    found = re.search(r'<p class="flash flash--(\w+)" role="status">(.*?)</p>', page, re.S)
    assert found, "no flash on the page"
    return f"{found.group(1)}: {unescape(found.group(2))}"


def security_escalation(guard: ConversationGuard) -> str:
    result = guard.escalate("chat-sec", "Update the login flow", task_id="login", context=SECURITY)
    assert result.escalation_id
    return result.escalation_id


# --- stored and shown ---
def test_the_assessment_is_stored_on_the_record_with_the_rule_that_escalated(guard, db_path):
    esc_id = security_escalation(guard)
    a = guard.store.escalation(esc_id)["assessment"]
    assert a["rule"] == "security_change"
    assert a["decision_type"] == "other" and a["category"] in ("strategic", "tactical", "mixed")
    assert 0.0 <= a["criticality"] <= 1.0 and "summary" not in a
    critical = guard.escalate("chat-crit", "Tidy the variable names in the helper module", task_id="tidy",
                              context=CRITICAL).escalation_id
    c = guard.store.escalation(critical)["assessment"]
    assert (c["rule"], c["critical"], c["factors"]) == ("criticality", True, ["production", "security"])
    guard.store.close()

    shown = json.loads(run("show", esc_id, "--json", "--db", str(db_path)).output)
    assert shown["assessment"]["rule"] == "security_change" and shown["outcome"] is None
    text = run("show", critical, "--db", str(db_path)).output
    assert re.search(r"escalated by: criticality\n\s+criticality: 0\.95 \(critical\) from production, security", text)
    assert "decision: other, " in text and "{'criticality'" not in text


def test_a_record_without_an_assessment_shows_nothing_for_it(guard, ops, client, db_path):
    esc_id = ops.create("Refund over the limit")["id"]  # made by an operator: no guard decision behind it
    assert guard.store.escalation(esc_id)["assessment"] is None
    page = client.get(f"/console/escalations/{esc_id}")
    assert page.status_code == 200 and "Why this was escalated" not in page.text
    result = run("show", esc_id, "--db", str(db_path))
    assert result.exit_code == 0 and "escalated by" not in result.output


async def test_the_conversation_resource_carries_the_assessment(guard):
    esc_id = security_escalation(guard)
    async with Client(build_server(guard=guard)) as mcp:
        history = json.loads((await mcp.read_resource("escalation://conversations/chat-sec")).contents[0].text)
    [record] = history["escalations"]
    assert record["id"] == esc_id and record["assessment"]["rule"] == "security_change"


def test_the_console_page_says_why_it_was_escalated(guard, client):
    esc_id = guard.escalate("chat-crit", "Tidy the variable names in the helper module", task_id="tidy",
                            context=CRITICAL).escalation_id
    page = client.get(f"/console/escalations/{esc_id}").text
    block = re.search(r'<section class="panel" id="assessment">(.*?)</section>', page, re.S)
    assert block, "no assessment block"
    text = unescape(re.sub(r"<[^>]+>", " ", block.group(1)))
    assert "Why this was escalated" in text
    for expected in ("criticality", "0.95", "critical: a person must decide", "decision type", "other",
                     "category", "rule", "production, security"):
        assert expected in text


# --- the outcome form ---
@pytest.mark.parametrize("verdict", ["necessary", "unnecessary"])
def test_an_outcome_button_records_it_signed_by_the_operator(guard, client, verdict):
    esc_id = security_escalation(guard)
    form = client.get(f"/console/escalations/{esc_id}").text
    assert "Was this escalation needed?" in form and 'name="csrf"' in form
    assert 'value="necessary">Necessary</button>' in form and 'value="unnecessary">Unnecessary</button>' in form
    client.post("/console/operator", data={"csrf": page_csrf(client, esc_id), "operator": "Dana"})
    done = mark(client, esc_id, verdict, note="the login flow is owned by security")
    assert flash(done.text) == f"ok: {esc_id} marked {verdict} by Dana; the adaptive escalation target learns from it."
    [row] = outcomes(guard.store)
    assert (row["escalation_id"], row["outcome"], row["by"], row["type"]) == (esc_id, verdict, "Dana", "decision")
    assert row["note"] == "the login flow is owned by security"
    page = client.get(f"/console/escalations/{esc_id}").text
    assert f"Marked <strong>{verdict}</strong> by Dana" in page
    assert 'value="necessary"' not in page  # the form gives way to the recorded outcome
    audit = [e for e in guard.store.audit_entries(escalation_id=esc_id) if e["action"] == "outcome"]
    assert audit and audit[0]["actor"] == "Dana"


def test_a_forged_csrf_token_is_refused_and_records_nothing(guard, client):
    esc_id = security_escalation(guard)
    for fields in ({}, {"csrf": "forged"}):
        response = client.post(f"/console/escalations/{esc_id}/outcome", data={"outcome": "necessary", **fields})
        assert response.status_code == 403
    assert outcomes(guard.store) == []


def test_a_second_outcome_is_refused_with_what_to_do(guard, client):
    esc_id = security_escalation(guard)
    mark(client, esc_id, "necessary")
    refused = mark(client, esc_id, "unnecessary")
    assert flash(refused.text).startswith(f"error: {esc_id} is already marked necessary by operator at ")
    assert f"`escalation-matrix outcome {esc_id} necessary|unnecessary`" in flash(refused.text)
    assert [r["outcome"] for r in outcomes(guard.store)] == ["necessary"]
    bad = mark(client, security_escalation_other(guard), "maybe")
    assert flash(bad.text) == "error: the outcome must be necessary or unnecessary, got 'maybe'"


def security_escalation_other(guard: ConversationGuard) -> str:
    return guard.escalate("chat-other", "Update the password reset flow", task_id="reset",
                          context=SECURITY).escalation_id


def test_a_console_outcome_moves_the_decision_quality_panel(guard, client):
    def marked() -> str:
        found = re.search(r"Marked necessary (\d+), unnecessary (\d+), missed (\d+)", client.get("/console/dashboard").text)
        assert found, "no decision-quality panel"
        return found.group(0)

    assert marked() == "Marked necessary 0, unnecessary 0, missed 0"
    mark(client, security_escalation(guard), "necessary")
    mark(client, security_escalation_other(guard), "unnecessary")
    assert marked() == "Marked necessary 1, unnecessary 1, missed 0"
