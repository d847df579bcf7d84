"""Structured answers: approve, reject, modify (with the change), delegate (to whom), defer (until
when) and conditional approval, through the real in-memory MCP client, the LangChain tool and the
CLI; the agent's next step follows from the action; a plain answer works as before."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mcp import Client

from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock):
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


def escalation(guard, conversation="c1"):
    result = guard.escalate(conversation, "Deploy the new build", context=PROD)
    assert result.action.value == "escalate"
    return result


@pytest.mark.parametrize("args, action, step, answer", [
    ({"action": "approve"}, "proceed", "Approved: carry it out now", "Approved."),
    ({"action": "reject", "answer": "Not this week."}, "proceed", "Rejected: do not do this", "Rejected. Not this week."),
    ({"action": "modify", "change": "Deploy to the canary first"}, "proceed", "make this change first",
     "Approved with a change: Deploy to the canary first"),
    ({"action": "conditional", "conditions": ["after 18:00", "with a rollback plan"]}, "proceed",
     "only while all of these hold - after 18:00; with a rollback plan", "Approved on conditions: after 18:00; "
                                                                          "with a rollback plan"),
])
async def test_answering_actions_through_mcp_tell_the_agent_what_to_do(guard, args, action, step, answer):
    esc = escalation(guard)
    async with Client(build_server(guard=guard)) as client:
        result = await client.call_tool("respond", {"escalation_id": esc.escalation_id, "conversation_id": "c1",
                                                    **args})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["action"] == action and step in data["instruction"]
    assert data["response"]["action"] == args["action"]
    record = guard.store.escalation(esc.escalation_id)
    assert (record["status"], record["answer"], record["response_action"]) == ("answered", answer, args["action"])


async def test_defer_keeps_it_open_and_the_agent_waits_until_then(guard):
    esc = escalation(guard)
    async with Client(build_server(guard=guard)) as client:
        data = (await client.call_tool("respond", {"escalation_id": esc.escalation_id, "conversation_id": "c1",
                                                   "action": "defer", "until": "2030-01-02T09:00:00Z"})
                ).structured_content
    assert data["action"] == "wait" and "Deferred until 2030-01-02T09:00:00Z" in data["instruction"]
    record = guard.store.escalation(esc.escalation_id)
    assert record["status"] == "awaiting_response" and record["deferred_until"] == record["due_at"] == \
        "2030-01-02T09:00:00Z"
    later = guard.respond(esc.escalation_id, "Go ahead now", role="agent", conversation_id="c1")
    assert later.action.value == "proceed"  # still answerable after the deferral


def test_delegate_routes_it_to_the_person_named(guard):
    esc = escalation(guard)
    result = guard.respond(esc.escalation_id, None, role="agent", conversation_id="c1", action="delegate",
                           to="release-manager")
    assert result.action.value == "wait" and "Routed to release-manager" in result.instruction
    record = guard.store.escalation(esc.escalation_id)
    assert record["assignee"] == "release-manager" and record["status"] == "awaiting_response"
    assert "delegate" in [e["action"] for e in guard.store.audit_entries(escalation_id=esc.escalation_id)]


@pytest.mark.parametrize("args, message", [
    ({"action": "modify"}, "change"),
    ({"action": "delegate"}, "to must be a non-empty string"),
    ({"action": "defer"}, "defer needs until"),
    ({"action": "defer", "until": "2001-01-01T00:00:00Z"}, "not in the future"),
    ({"action": "defer", "until": "tomorrow"}, "not an ISO time"),
    ({"action": "conditional"}, "at least one condition"),
    ({}, "give the person's answer, or an action"),
])
def test_each_action_names_what_it_needs(guard, args, message):
    from escalation_matrix.errors import InputError

    esc = escalation(guard)
    with pytest.raises(InputError, match=message):
        guard.respond(esc.escalation_id, None, role="agent", conversation_id="c1", **args)


def test_langchain_respond_takes_an_action(guard):
    esc = escalation(guard)
    tools = {t.name: t for t in make_tools(guard, conversation_id="c1")}
    content = tools["respond"].invoke({"escalation_id": esc.escalation_id, "action": "modify",
                                       "change": "Use the blue-green switch"})
    assert "make this change first" in str(content)
    assert guard.store.escalation(esc.escalation_id)["response_action"] == "modify"


def test_cli_respond_with_an_action(guard, db_path):
    esc = escalation(guard)
    other = escalation(guard, "c2")
    ok = CliRunner().invoke(main, ["respond", esc.escalation_id, "conditional", "--condition", "after 18:00",
                                   "--by", "lead", "--db", str(db_path)], catch_exceptions=False)
    assert ok.exit_code == 0 and "Approved on conditions: after 18:00" in ok.output
    deferred = CliRunner().invoke(main, ["respond", other.escalation_id, "defer", "--until", "2030-01-01T00:00:00Z",
                                         "--db", str(db_path)], catch_exceptions=False)
    assert deferred.exit_code == 0 and "Deferred until 2030-01-01T00:00:00Z" in deferred.output
    bad = CliRunner().invoke(main, ["respond", other.escalation_id, "modify", "--db", str(db_path)])
    assert bad.exit_code != 0 and "change" in bad.output


def test_a_plain_answer_still_works_as_before(guard):
    esc = escalation(guard)
    result = guard.respond(esc.escalation_id, "Wait for Monday", role="agent", conversation_id="c1")
    assert result.action.value == "proceed" and result.answer == "Wait for Monday" and result.response is None
    assert guard.store.escalation(esc.escalation_id)["response_action"] is None


def test_defer_and_delegate_from_the_cli_keep_the_oversight_rules_and_notify(guard, policy, db_path):
    """An operator's defer or delegate is checked like an answer: a suspended actor neither defers
    nor is handed the item; each change queues a notification for the assignee."""
    from escalation_matrix.ops.oversight import Oversight
    from escalation_matrix.ops.oversight_chain import suspend

    esc = escalation(guard)
    suspend(Oversight(guard.store, policy), "ana", "complaint", "ops")
    refused = CliRunner().invoke(main, ["respond", esc.escalation_id, "defer", "--until", "2030-01-01T00:00:00Z",
                                        "--by", "ana", "--db", str(db_path)])
    assert refused.exit_code != 0 and "ana is suspended" in refused.output
    handed = CliRunner().invoke(main, ["respond", esc.escalation_id, "delegate", "--to", "ana", "--by", "bo",
                                       "--db", str(db_path)])
    assert handed.exit_code != 0 and "ana is suspended" in handed.output
    record = Store(db_path).escalation(esc.escalation_id)
    assert record["assignee"] != "ana" and record["deferred_until"] is None  # nothing changed

    ok = CliRunner().invoke(main, ["respond", esc.escalation_id, "delegate", "--to", "carla", "--by", "bo",
                                   "--note", "she owns the release", "--db", str(db_path)])
    assert ok.exit_code == 0, ok.output
    with Store(db_path).transaction() as conn:
        events = [row[0] for row in conn.execute("SELECT event FROM outbox WHERE escalation_id = ?",
                                                 (esc.escalation_id,))]
    assert "delegated" in events
    assert Store(db_path).escalation(esc.escalation_id)["assignee"] == "carla"


async def test_an_agent_cannot_delegate_to_a_suspended_actor_through_mcp(guard, policy):
    from escalation_matrix.ops.oversight import Oversight
    from escalation_matrix.ops.oversight_chain import suspend

    esc = escalation(guard)
    suspend(Oversight(guard.store, policy), "ana", "complaint", "ops")
    async with Client(build_server(guard=guard)) as client:
        refused = await client.call_tool("respond", {"escalation_id": esc.escalation_id, "action": "delegate",
                                                     "to": "ana"})
        assert refused.is_error and "ana is suspended" in refused.content[0].text
        ok = await client.call_tool("respond", {"escalation_id": esc.escalation_id, "action": "delegate",
                                                "to": "carla"})
        assert not ok.is_error and ok.structured_content["action"] == "wait"
    assert guard.store.escalation(esc.escalation_id)["assignee"] == "carla"
