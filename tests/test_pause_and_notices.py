"""An L1 reminder and an L3 "awaiting guidance" reach the agent in the next tool result of that
conversation, a resource lists what is pending, and an L3 task is paused (action wait) until a
person answers. Real SQLite file, controlled clock, the guard, the in-memory MCP client and a
LangChain tool loop; the fake embedder keeps it fast and policy rules decide the types."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from mcp import Client
from mcp.shared.exceptions import MCPError

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import ESCALATION_PROTOCOL, make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import Action
from escalation_matrix.ops.failsafe import sweep

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
DEPLOY = "Deploy the new build"  # scope, L2
TONE = ("Write the report", "Which tone do you want?")  # context, L1
HARM = "I want to kill myself"


@pytest.fixture
def guard(policy, fake_classifier, store):
    return ConversationGuard(policy, fake_classifier, store)


def test_a_due_reminder_shows_once_in_the_next_result_of_that_conversation(guard, store, clock, policy):
    asked = guard.clarify("c1", *TONE, missing="the tone")
    sweep(store, policy, clock.at(minutes=5))
    other = guard.classify("Summarise this article")
    assert other.notices == []  # no conversation: nothing to tell
    elsewhere = guard.escalate("c2", DEPLOY, context=PROD)
    assert elsewhere.notices == []  # another conversation
    nxt = guard.escalate("c1", DEPLOY, context=PROD, task_id="deploy")
    assert len(nxt.notices) == 1 and asked.escalation_id in nxt.notices[0] and "remind" in nxt.notices[0]
    assert "still unanswered after 5 min:" in nxt.notices[0]  # the same duration words as the card
    again = guard.escalate("c1", DEPLOY, context=PROD, task_id="deploy")
    assert again.notices == []  # said once


def test_l2_raised_to_l3_pauses_the_task_and_says_so(guard, store, clock, policy):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    sweep(store, policy, clock.at(minutes=30))
    assert store.escalation(first.escalation_id)["severity"] == "L3"
    result = guard.clarify("c1", *TONE, missing="the tone")
    assert result.action is Action.wait and result.escalation_id == first.escalation_id
    assert any("awaiting guidance" in n for n in result.notices)
    assert store.count("escalations") == 1
    guard.respond(first.escalation_id, "Deploy on Monday")
    after = guard.clarify("c1", *TONE, missing="the tone")
    assert after.action is Action.escalate and after.escalation_id != first.escalation_id


def test_an_l4_gets_through_a_paused_task(guard, store, clock, policy):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    sweep(store, policy, clock.at(minutes=30))
    stop = guard.escalate("c1", HARM)
    assert stop.action is Action.stop and stop.escalation_id != first.escalation_id


def test_waiting_is_reported_apart_not_as_an_escalation(guard, store, clock, policy):
    from escalation_matrix.ops.reports import build_report

    guard.escalate("c1", DEPLOY, context=PROD)
    sweep(store, policy, clock.at(minutes=30))
    guard.clarify("c1", *TONE, missing="the tone")
    report = build_report(store, policy, "daily", clock.moment.date())
    assert (report.decisions, report.refusals) == (2, 1)
    assert next(r for r in report.rates if r.name == "total").escalations == 1


async def test_over_mcp_the_notice_the_wait_and_the_pending_resource(guard, store, clock, policy):
    async with Client(build_server(guard=guard)) as client:
        first = (await client.call_tool("escalate", {"conversation_id": "m", "request": DEPLOY,
                                                      "context": PROD})).structured_content
        sweep(store, policy, clock.at(minutes=30))
        pending = json.loads((await client.read_resource("escalation://pending/m")).contents[0].text)
        waited = (await client.call_tool("clarify", {"conversation_id": "m", "request": TONE[0],
                                                      "question": TONE[1]})).structured_content
        with pytest.raises(MCPError, match="unknown"):
            await client.read_resource("escalation://pending/nobody")
    assert pending["tasks"] == [{"task_id": "default", "state": "awaiting_guidance"}]
    assert [e["id"] for e in pending["escalations"]] == [first["escalation_id"]]
    assert waited["action"] == "wait" and any("awaiting guidance" in n for n in waited["notices"])


def test_a_langchain_loop_sees_the_reminder_and_the_pause(guard, store, clock, policy):
    from test_langchain import ToolCallingFake, call, run_loop, tool_json

    history = [SystemMessage(ESCALATION_PROTOCOL), HumanMessage(DEPLOY)]

    def script():
        yield AIMessage("", tool_calls=[call("escalate", {"request": DEPLOY, "context": PROD})])
        sweep(store, policy, clock.at(minutes=30))
        yield AIMessage("", tool_calls=[call("clarify", {"request": TONE[0], "question": TONE[1]}, 2)])
        yield AIMessage(tool_json(history, "clarify")["action"])

    run_loop(ToolCallingFake(messages=script()), make_tools(guard, conversation_id="lc"), history)
    assert history[-1].content == "wait"
    assert any("awaiting guidance" in n for n in tool_json(history, "clarify")["notices"])


def test_the_same_issue_on_a_paused_task_is_a_repeat_not_a_wait(guard, store, clock, policy):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    sweep(store, policy, clock.at(minutes=30))  # raised to L3: the task is paused
    again = guard.escalate("c1", DEPLOY, context=PROD)
    assert again.repeated and again.escalation_id == first.escalation_id and again.action is not Action.wait
