"""Batching: escalations that can wait, for one person, are queued and delivered together (at most
the batch size, or when the window ends), related items grouped; critical ones go at once; the
person approves all or the items selected (MCP, CLI, console); the report counts batch efficiency."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from mcp import Client

from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops import batches
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.store import Store
from test_cli_core import run
from test_policy_check import edit

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

ALICE = {"person": "alice"}
QUESTIONS = ["Which log level should the new worker use?", "Should the retry limit be 3 or 5?",
             "Which queue name do you prefer for the exports?", "Should the report be weekly or monthly?",
             "Which colour should the status badge have?", "Should the cache expire after one or two hours?"]


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock):
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


def ask(guard, i, context=ALICE, task=None, type="decision", conversation=None):
    return guard.escalate(conversation or f"chat-{i}", "Set up the export worker", task_id=task,
                          question=QUESTIONS[i], context=context, type=type)


def created_notices(store):
    return [r for r in store.rows("outbox") if r["event"] == "created"]


def batch_notices(store):
    return [r for r in store.rows("outbox") if r["event"] == "batch_delivered"]


# --- grouping and delivery timing ---
def test_five_items_for_one_person_are_delivered_at_once_in_one_notification(guard):
    results = [ask(guard, i) for i in range(5)]
    assert all(r.action.value == "escalate" and r.batch_id == results[0].batch_id for r in results)
    assert all(r.queued for r in results[:4]) and not results[4].queued  # the fifth filled and delivered it
    assert "Queued with other questions for alice" in results[0].instruction
    assert created_notices(guard.store) == []
    [notice] = batch_notices(guard.store)
    text = json.loads(notice["payload"])["text"]
    assert all(r.escalation_id in text for r in results) and "5 questions" in text
    batch = batches.show(guard.store, results[0].batch_id, guard.policy.decisions.batching)
    assert batch["status"] == "delivered" and batch["delivered_why"] == "full" and batch["open_items"] == 5
    sixth = ask(guard, 5)
    assert sixth.queued and sixth.batch_id != results[0].batch_id  # a new batch opens


def test_fewer_items_wait_until_the_window_ends_and_the_sweep_delivers_once(guard, clock):
    first, second = ask(guard, 0), ask(guard, 1)
    assert first.queued and second.batch_id == first.batch_id
    clock.moment += timedelta(seconds=299)
    assert sweep(guard.store, guard.policy).batches == [] and batch_notices(guard.store) == []
    clock.moment += timedelta(seconds=1)
    assert sweep(guard.store, guard.policy).batches == [first.batch_id]
    assert sweep(guard.store, guard.policy).batches == []  # delivered once, whoever sweeps again
    assert len(batch_notices(guard.store)) == 1
    again = ask(guard, 0)  # the same question again: the same record, now delivered
    assert again.repeated and again.escalation_id == first.escalation_id and again.batch_id == first.batch_id
    assert not again.queued and "Delivered to alice" in again.instruction


def test_a_repeat_of_a_queued_item_returns_the_same_record_and_adds_nothing(guard):
    first = ask(guard, 0)
    again = ask(guard, 0)
    assert again.repeated and again.escalation_id == first.escalation_id and again.queued
    assert batches.show(guard.store, first.batch_id, guard.policy.decisions.batching)["items"][0]["id"] == \
        first.escalation_id
    assert len(batches.listing(guard.store, guard.policy.decisions.batching)) == 1
    assert batches.listing(guard.store, guard.policy.decisions.batching)[0]["items"] == 1


def test_critical_safety_and_unnamed_people_are_never_batched(guard):
    critical = ask(guard, 0, context={**ALICE, "environment": "production", "security_impact": True,
                                      "reversible": False})
    assert critical.decision.critical and not critical.queued and critical.batch_id is None
    safety = ask(guard, 1, type="safety")
    assert safety.batch_id is None
    nobody = ask(guard, 2, context={})
    assert nobody.action.value == "escalate" and nobody.batch_id is None
    assert len(created_notices(guard.store)) >= 2 and batch_notices(guard.store) == []


def test_related_items_are_grouped_by_task_type_and_resource(guard):
    ask(guard, 4, task="t1", context={**ALICE, "resource": "exports"}, conversation="other")  # another task
    ask(guard, 0, task="t1", context={**ALICE, "resource": "exports"}, conversation="c")
    ask(guard, 1, task="t1", context={**ALICE, "resource": "exports"}, conversation="c")
    ask(guard, 2, task="t2", context={**ALICE, "resource": "billing"}, conversation="c")
    last = ask(guard, 3, task="t2", context={**ALICE, "resource": "exports"}, conversation="c")
    batch = batches.show(guard.store, last.batch_id, guard.policy.decisions.batching)
    assert batch["items"][4]["id"] == last.escalation_id  # (a task hands off at its third escalation)
    assert [(g["conversation_id"], g["task_id"], g["resource"], len(g["items"])) for g in batch["groups"]] == [
        ("other", "t1", "exports", 1), ("c", "t1", "exports", 2), ("c", "t2", "billing", 1),
        ("c", "t2", "exports", 1)]
    text = json.loads(batch_notices(guard.store)[0]["payload"])["text"]  # five: delivered, grouped
    assert "[c task t1, decision, exports] " in text and "[c task t2, decision, billing] " in text


def test_people_have_their_own_batches(guard):
    a, b = ask(guard, 0), ask(guard, 1, context={"person": "bob"})
    assert a.batch_id != b.batch_id


# --- answering a batch ---
def test_approve_selected_answers_only_those_and_approve_all_the_rest(guard):
    results = [ask(guard, i) for i in range(3)]
    settings = guard.policy.decisions.batching
    bid = results[0].batch_id
    done = batches.answer_batch(guard.store, bid, "alice", settings, items=[results[1].escalation_id])
    assert done["answered"] == [results[1].escalation_id] and done["open_left"] == 2
    records = {r["id"]: r for r in guard.store.escalations()}
    assert records[results[1].escalation_id]["response_action"] == "approve"
    assert records[results[0].escalation_id]["status"] == "awaiting_response"
    rest = batches.answer_batch(guard.store, bid, "alice", settings)
    assert sorted(rest["answered"]) == sorted([results[0].escalation_id, results[2].escalation_id])
    assert rest["status"] == "answered" and rest["open_left"] == 0
    actions = [e["action"] for e in guard.store.audit_entries()]
    assert actions.count("answer") == 3 and actions.count("batch_answer") == 2
    # answered before its window ended: nothing is left to deliver
    guard.store.clock.moment += timedelta(hours=1)
    assert sweep(guard.store, guard.policy).batches == [] and batch_notices(guard.store) == []
    # the agent asking again gets the answer (never re-ask)
    again = ask(guard, 0)
    assert again.action.value == "proceed" and again.answer == "Approved."
    with pytest.raises(Exception, match="no open item"):
        batches.answer_batch(guard.store, bid, "alice", settings)


def test_selecting_an_item_of_another_batch_is_refused(guard):
    mine = ask(guard, 0)
    other = ask(guard, 1, context={"person": "bob"})
    with pytest.raises(Exception, match="not in batch"):
        batches.answer_batch(guard.store, mine.batch_id, "alice", guard.policy.decisions.batching,
                             items=[other.escalation_id])


# --- policy ---
@pytest.mark.parametrize("old, new, message", [
    ("max_items: 5", "max_items: 1", "batching.max_items: a batch of one item is no batch"),
    ("window_seconds: 300", "window_seconds: 0", "batching.window_seconds"),
    ("window_seconds: 300", "window_seconds: 172800", "batching.window_seconds: 172800 s holds a question back"),
    ("types: [clarification, conflict, context, decision, scope, technical]", "types: [decision, safety]",
     "batching.types: safety is sent at once"),
    ("max_severity: L2\n  person_field", "max_severity: L3\n  person_field", "batching.max_severity: an L3 pauses"),
    ("resource_field: resource", "resource_field: resorce", "batching.resource_field: unknown context field"),
])
def test_policy_check_rejects_bad_batch_settings(data_copy, old, new, message):
    edit(data_copy / "policies/decisions.yaml", old, new)
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "decisions.yaml" in result.output and message in result.output, result.output


def test_the_shipped_batch_settings_are_the_documented_ones(policy):
    b = policy.decisions.batching
    assert (b.enabled, b.max_items, b.window_seconds, b.max_severity.value) == (True, 5, 300, "L2")


def test_policy_can_turn_batching_off(data_copy, fake_classifier, db_path, clock):
    from escalation_matrix.loader import load_policy

    edit(data_copy / "policies/decisions.yaml", "batching:\n  enabled: true", "batching:\n  enabled: false")
    policy = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    guard = ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))
    result = ask(guard, 0)
    assert result.batch_id is None and len(created_notices(guard.store)) >= 1


# --- MCP (in memory), CLI, console, report ---
async def test_mcp_escalate_is_queued_then_the_batch_is_shown_and_approved(guard):
    async with Client(build_server(guard=guard)) as client:
        calls = [{"conversation_id": f"mcp-{i}", "request": "Set up the export worker", "question": QUESTIONS[i],
                  "context": ALICE, "type": "decision"} for i in range(3)]
        first = (await client.call_tool("escalate", calls[0])).structured_content
        assert first["queued"] is True and first["batch_id"] >= 1 and "Queued" in first["instruction"]
        repeat = (await client.call_tool("escalate", calls[0])).structured_content
        assert repeat["repeated"] and repeat["escalation_id"] == first["escalation_id"] and repeat["queued"]
        second = (await client.call_tool("escalate", calls[1])).structured_content
        third = (await client.call_tool("escalate", calls[2])).structured_content
        listed = (await client.call_tool("batches", {"status": "open"})).structured_content
        assert [b["items"] for b in listed["batches"]] == [3]
        shown = (await client.call_tool("batches", {"batch_id": first["batch_id"]})).structured_content
        assert shown["card"]["kind"] == "batch" and len(shown["card"]["items"]) == 3
        assert "approve_selected" in shown["card"]["actions"]
        selected = await client.call_tool("answer_batch", {"batch_id": first["batch_id"],
                                                           "items": [second["escalation_id"]]})
        assert not selected.is_error, selected.content
        assert selected.structured_content["answered"] == [second["escalation_id"]]
        rest = (await client.call_tool("answer_batch", {"batch_id": first["batch_id"]})).structured_content
        assert sorted(rest["answered"]) == sorted([first["escalation_id"], third["escalation_id"]])
        wrong = await client.call_tool("answer_batch", {"batch_id": 999})
        assert wrong.is_error and "not found" in wrong.content[0].text
        history = (await client.call_tool("escalate", calls[1])).structured_content
        assert history["action"] == "proceed" and history["answer"] == "Approved."


def test_cli_lists_shows_and_approves_a_batch(guard, db_path):
    results = [ask(guard, i) for i in range(3)]
    bid = str(results[0].batch_id)
    runner = CliRunner()
    listed = runner.invoke(main, ["batch", "list", "--db", str(db_path)])
    assert listed.exit_code == 0, listed.output
    assert f"{bid} alice open: 3 of 3 open" in listed.output
    shown = runner.invoke(main, ["batch", "show", bid, "--format", "md", "--db", str(db_path)])
    assert shown.exit_code == 0 and "## Batch" in shown.output and results[2].escalation_id in shown.output
    card = json.loads(runner.invoke(main, ["batch", "show", bid, "--format", "json", "--db", str(db_path)]).output)
    assert card["kind"] == "batch" and card["person"] == "alice"
    chosen = runner.invoke(main, ["batch", "approve", bid, "--items", results[0].escalation_id, "--by", "alice",
                                  "--db", str(db_path)])
    assert chosen.exit_code == 0, chosen.output
    assert f"approved {results[0].escalation_id}; 2 open left" in chosen.output
    rest = runner.invoke(main, ["batch", "reject", bid, "--db", str(db_path)])
    assert rest.exit_code == 0 and "0 open left (answered)" in rest.output
    again = runner.invoke(main, ["batch", "approve", bid, "--db", str(db_path)])
    assert again.exit_code != 0 and "no open item" in again.output


def test_console_batch_page_approves_selected_then_all(guard):
    from starlette.testclient import TestClient

    from escalation_matrix import console
    from escalation_matrix.mcp_app import build_http_app

    results = [ask(guard, i) for i in range(3)]
    bid = results[0].batch_id
    app = build_http_app(build_server(guard=guard), token="console-token-4b2e", extra_routes=console.routes(guard))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        index = client.get("/console/batches?token=console-token-4b2e")
        assert index.status_code == 200 and f'href="/console/batches/{bid}"' in index.text
        page = client.get(f"/console/batches/{bid}")
        assert page.status_code == 200 and page.text.count('type="checkbox"') == 3
        assert "Approve all" in page.text and "Approve selected" in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        operator = re.search(r"Working as <strong>([^<]+)</strong>", page.text).group(1)
        refused = client.post(f"/console/batches/{bid}/answer", data={"csrf": "forged", "scope": "all"})
        assert refused.status_code == 403
        chosen = client.post(f"/console/batches/{bid}/answer",
                             data={"csrf": token, "scope": "selected", "items": [results[1].escalation_id]})
        assert chosen.status_code == 200 and "approved 1" in chosen.text
        records = {r["id"]: r["status"] for r in guard.store.escalations()}
        assert records[results[1].escalation_id] == "answered"
        assert records[results[0].escalation_id] == records[results[2].escalation_id] == "awaiting_response"
        nothing = client.post(f"/console/batches/{bid}/answer", data={"csrf": token, "scope": "selected"})
        assert "select at least one" in nothing.text
        everything = client.post(f"/console/batches/{bid}/answer", data={"csrf": token, "scope": "all"})
        assert "approved 2" in everything.text
        record = client.get(f"/console/escalations/{results[0].escalation_id}")
        assert f'href="/console/batches/{bid}"' in record.text
        dashboard = client.get("/console/dashboard")
        assert 'id="batch-efficiency"' in dashboard.text and "items per batch" in dashboard.text
    assert all(r["status"] == "answered" for r in guard.store.escalations())
    entries = [e for e in guard.store.audit_entries() if e["action"] == "batch_answer"]
    assert [e["actor"] for e in entries] == [operator, operator]  # the session's operator signs the answers
    assert {r["answered_by"] for r in guard.store.escalations()} == {operator}


def test_the_report_counts_batch_efficiency(guard, clock, policy):
    from escalation_matrix.ops.report_format import render_report
    from escalation_matrix.ops.reports import build_report

    for i in range(5):
        ask(guard, i)  # one full batch: 5 items, one notification
    ask(guard, 5)
    clock.moment += timedelta(seconds=301)
    sweep(guard.store, guard.policy)  # the second, one item at its window's end
    q = build_report(guard.store, policy, "daily").decision_quality
    assert (q.batches_delivered, q.batched_items, q.items_per_batch, q.notifications_saved) == (2, 6, 3.0, 4)
    report = build_report(guard.store, policy, "daily")
    assert "batches delivered 2, 3.0 items per batch, 4 notifications saved" in render_report(report, "text")
    assert "batch_efficiency" in render_report(report, "csv")


def test_langchain_escalate_shows_the_queued_batch_and_respond_answers_an_item(guard):
    """The LangChain tools are the agent's (no operator tools): the result shows the batch, and
    relaying the person's answer to one item works as for any escalation."""
    from escalation_matrix.langchain import make_tools

    tools = {t.name: t for t in make_tools(guard, conversation_id="lc-1")}
    args = {"request": "Set up the export worker", "question": QUESTIONS[0], "context": ALICE, "type": "decision"}
    message = tools["escalate"].invoke({"name": "escalate", "args": args, "id": "call-1", "type": "tool_call"})
    data = json.loads(message.content)
    assert data["queued"] is True and data["batch_id"] >= 1 and "batch" in data["instruction"]
    answered = tools["respond"].invoke({"name": "respond", "args": {"escalation_id": data["escalation_id"],
                                                                    "action": "approve"},
                                        "id": "call-2", "type": "tool_call"})
    assert json.loads(answered.content)["action"] == "proceed"
    batch = batches.show(guard.store, data["batch_id"], guard.policy.decisions.batching)
    assert batch["status"] == "open" and batch["open_items"] == 0


def test_erasing_one_conversation_erases_its_question_from_the_batch_notification(guard):
    from escalation_matrix.ops.erase import erase_conversation

    results = [ask(guard, i) for i in range(5)]
    [notice] = batch_notices(guard.store)
    assert QUESTIONS[3] in json.loads(notice["payload"])["text"]
    erase_conversation(guard.store, results[3].conversation_id, "dpo", "request 17")
    [notice] = batch_notices(guard.store)
    text = json.loads(notice["payload"])["text"]
    assert QUESTIONS[3] not in text and QUESTIONS[0] not in text and "erased" in text.lower()


def test_a_queued_questions_fail_safe_clock_starts_when_its_batch_is_delivered(guard, clock):
    first = ask(guard, 0, type="clarification")  # L1: reminded 5 minutes after its person got it
    assert first.severity.value == "L1" and first.queued
    clock.moment += timedelta(seconds=240)
    assert sweep(guard.store, guard.policy).transitions == []  # still queued: nothing fires
    clock.moment += timedelta(seconds=60)  # 300 s: the window ends and the reminder would have been due
    swept = sweep(guard.store, guard.policy)
    assert swept.batches == [first.batch_id] and swept.transitions == []
    record = guard.store.escalation(first.escalation_id)
    assert record["severity_at"] == guard.store.now()
    clock.moment += timedelta(seconds=299)
    assert sweep(guard.store, guard.policy).transitions == []
    clock.moment += timedelta(seconds=1)
    assert [t.stage for t in sweep(guard.store, guard.policy).transitions] == ["reminder"]
