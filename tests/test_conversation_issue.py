"""Re-asking after an answer, rewording, and the agent's own escalation type, with the real model,
through the library, the real in-memory MCP client, a stdio server process and a LangChain loop."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import ESCALATION_PROTOCOL, make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import Action, EscalationType
from escalation_matrix.store import Store

pytestmark = [pytest.mark.backends, pytest.mark.model]

WEBSITE = "Write something for the website."
FOCUS = "What do you want me to focus on for the website?"
DELETE_2019 = [
    "Delete all customer records older than 2019 from the production database",
    "Remove every customer record dated before 2019 from the prod DB",
    "Purge customers from before 2019 in production",
]
DELETE_2022 = "Delete all customer records older than 2022 from the production database"


@pytest.fixture
def guard(policy, classifier, db_path):
    return ConversationGuard(policy, classifier, Store(db_path))


def test_a_question_about_an_answered_request_proceeds_with_the_answer(guard):
    first = guard.escalate("web", WEBSITE, type="clarification")
    guard.respond(first.escalation_id, "The pricing page")
    again = guard.clarify("web", WEBSITE, FOCUS)
    assert (again.action, again.answer, again.escalation_id) == (Action.proceed, "The pricing page", first.escalation_id)
    assert guard.store.count("escalations") == 1


def test_a_reworded_request_is_the_same_open_issue(guard):
    first = guard.escalate("db", DELETE_2019[0], context={"environment": "production"})
    assert first.action is not Action.proceed
    again = guard.escalate("db", DELETE_2019[1], context={"environment": "production"})
    assert again.repeated and again.escalation_id == first.escalation_id
    assert guard.store.count("escalations") == 1
    assert guard.store.task(guard.store._conn(), "db", "default")["handed_off"] == 0


def test_three_rewordings_are_one_escalation_and_no_hand_off(guard):
    first = guard.escalate("db", DELETE_2019[0], context={"environment": "production"})
    for reworded in DELETE_2019[1:]:
        again = guard.escalate("db", reworded, context={"environment": "production"})
        assert again.repeated and again.escalation_id == first.escalation_id
    assert guard.store.count("escalations") == 1
    assert guard.store.task(guard.store._conn(), "db", "default")["handed_off"] == 0


def test_a_different_issue_sharing_words_is_new(guard):
    first = guard.escalate("db", DELETE_2019[0], context={"environment": "production"})
    other = guard.escalate("db", DELETE_2022, context={"environment": "production"})
    assert not other.repeated and other.escalation_id != first.escalation_id


def test_an_answer_to_another_request_is_not_reused(guard):
    first = guard.escalate("web", WEBSITE, type="clarification")
    guard.respond(first.escalation_id, "The pricing page")
    other = guard.clarify("web", "Write something for the newsletter.", "What should the newsletter focus on?")
    assert other.action is Action.escalate and other.escalation_id != first.escalation_id


def test_the_agent_can_insist_on_escalating_and_is_told_the_classifier_differs(guard):
    plain = guard.escalate("t", "Rename the variable x to count in utils.py")
    assert plain.action is Action.proceed and plain.escalation_id is None
    insisted = guard.escalate("t2", "Rename the variable x to count in utils.py", type="decision")
    assert insisted.action is Action.escalate and insisted.type is EscalationType.decision
    assert insisted.classified_as is EscalationType.none and insisted.escalation_id
    record = guard.store.escalation(insisted.escalation_id)
    assert record["type"] == "decision"
    assert guard.store.audit_entries(insisted.escalation_id)[0]["data"]["classified_as"] == "none"


def test_the_agent_type_that_agrees_with_the_classifier_is_not_flagged(guard):
    result = guard.escalate("t", "Set up the database for the new app", question="Postgres or MySQL?",
                            type="decision")
    assert result.type is EscalationType.decision and result.classified_as is None


def test_the_question_type_counts_when_the_request_reads_otherwise(guard):
    result = guard.escalate("t", "Set up the database for the new app", question="Postgres or MySQL?")
    assert result.type is EscalationType.decision and result.action is Action.escalate


@pytest.mark.parametrize("bad", ["pattern", "none", "urgent"])
def test_an_unknown_or_reserved_type_is_a_clear_error(guard, bad):
    from escalation_matrix.errors import InputError

    with pytest.raises(InputError, match="use one of clarification"):
        guard.escalate("t", WEBSITE, type=bad)
    assert guard.store.count("escalations") == 0


async def test_over_mcp_the_re_ask_and_the_insisted_type(guard):
    async with Client(build_server(guard=guard)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "decision" in json.dumps(tools["escalate"].input_schema["properties"]["type"])
        first = (await client.call_tool("escalate", {"conversation_id": "m", "request": WEBSITE,
                                                      "type": "clarification"})).structured_content
        await client.call_tool("respond", {"escalation_id": first["escalation_id"], "answer": "The pricing page"})
        again = (await client.call_tool("clarify", {"conversation_id": "m", "request": WEBSITE,
                                                     "question": FOCUS})).structured_content
        bad = await client.call_tool("escalate", {"conversation_id": "m", "request": WEBSITE, "type": "pattern"})
    assert (again["action"], again["answer"]) == ("proceed", "The pricing page")
    assert first["classified_as"] in (None, "none", "context", "decision", "scope")  # whatever the model saw
    assert bad.is_error


@pytest.mark.slow
async def test_over_stdio_a_reworded_request_is_the_same_issue(tmp_path):
    from servers import stdio_client

    async with stdio_client(tmp_path / "s.db", 300) as client:
        first = (await client.call_tool("escalate", {"conversation_id": "s", "request": WEBSITE,
                                                      "type": "clarification"})).structured_content
        await client.call_tool("respond", {"escalation_id": first["escalation_id"], "answer": "The pricing page"})
        again = (await client.call_tool("clarify", {"conversation_id": "s", "request": WEBSITE,
                                                     "question": FOCUS})).structured_content
        a = (await client.call_tool("escalate", {"conversation_id": "s", "task_id": "db", "request": DELETE_2019[0],
                                                  "type": "compliance"})).structured_content
        b = (await client.call_tool("escalate", {"conversation_id": "s", "task_id": "db", "request": DELETE_2019[1],
                                                  "type": "compliance"})).structured_content
    assert (again["action"], again["escalation_id"]) == ("proceed", first["escalation_id"])
    assert b["repeated"] and b["escalation_id"] == a["escalation_id"]


def test_a_langchain_loop_gets_the_earlier_answer_for_a_reworded_question(guard):
    from test_langchain import ToolCallingFake, call, run_loop, tool_json

    history = [SystemMessage(ESCALATION_PROTOCOL), HumanMessage(WEBSITE)]

    def script():
        yield AIMessage("", tool_calls=[call("escalate", {"request": WEBSITE, "type": "clarification"})])
        escalation = tool_json(history, "escalate")
        yield AIMessage("", tool_calls=[call("respond", {"escalation_id": escalation["escalation_id"],
                                                         "answer": "The pricing page"})])
        yield AIMessage("", tool_calls=[call("clarify", {"request": WEBSITE, "question": FOCUS}, 2)])
        yield AIMessage(f"Writing about {tool_json(history, 'clarify')['answer']}.")

    run_loop(ToolCallingFake(messages=script()), make_tools(guard, conversation_id="lc"), history)
    assert tool_json(history, "clarify")["action"] == "proceed"
    assert history[-1].content == "Writing about The pricing page."
    assert guard.store.count("escalations") == 1
