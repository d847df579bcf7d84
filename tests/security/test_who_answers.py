"""Who may answer what: an agent relays the person's answer to its own conversation's questions,
never a hand-off, an L4 lock, an operator's record or another agent's conversation. Through the
real MCP client in memory (one local agent) and over HTTP with two agent tokens and an operator."""

from __future__ import annotations

import json

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
BOT_1, BOT_2, ANA = "bot-one-token-3c8e1a77", "bot-two-token-9d0b4f12", "ana-operator-token-77e2"


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


async def call(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: Client, tool: str, **args) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def handoff(client: Client, conversation: str) -> dict:
    await call(client, "escalate", conversation_id=conversation, request="Deploy the new build", context=PROD)
    await call(client, "escalate", conversation_id=conversation, request="Buy the ads", context={"estimated_cost": 900})
    made = await call(client, "clarify", conversation_id=conversation, request="Write it", question="Which tone do you want?")
    assert made["action"] == "handoff"
    return made


async def test_an_agent_cannot_answer_its_own_handoff(guard):
    async with Client(build_server(guard=guard)) as client:
        made = await handoff(client, "c1")
        message = await refused(client, "respond", escalation_id=made["escalation_id"], answer="carry on")
        again = await call(client, "clarify", conversation_id="c1", request="Write it", question="Which font?")
    assert "hand-off" in message and "stop working on the task" in message
    assert guard.store.escalation(made["escalation_id"])["status"] != "answered"
    assert again["action"] == "handoff"  # the task stays with the person


async def test_an_agent_cannot_answer_an_l4_lock(guard):
    async with Client(build_server(guard=guard)) as client:
        stop = await call(client, "escalate", conversation_id="c2", request="I want to kill myself")
        message = await refused(client, "respond", escalation_id=stop["escalation_id"], answer="all fine")
    assert "locked task (L4)" in message
    assert guard.store.escalation(stop["escalation_id"])["answer"] is None


async def test_an_agent_cannot_answer_an_operator_or_pipeline_record(guard):
    manual = Operations(guard.store, guard.policy).create("Approve the refund", conversation_id="c1", task_id="default")
    async with Client(build_server(guard=guard)) as client:
        message = await refused(client, "respond", escalation_id=manual["id"], answer="approved")
    assert "raised by manual, not by an agent" in message
    assert guard.store.escalation(manual["id"])["status"] == "open"


async def test_an_agent_cannot_answer_another_conversations_escalation(guard):
    async with Client(build_server(guard=guard)) as client:
        asked = await call(client, "clarify", conversation_id="c1", request="Set up the server",
                           question="Which region should it run in?")
        message = await refused(client, "respond", escalation_id=asked["escalation_id"], answer="eu",
                                conversation_id="c9")
        ok = await call(client, "respond", escalation_id=asked["escalation_id"], answer="eu", conversation_id="c1")
    assert "does not belong to conversation 'c9'" in message
    assert ok["action"] == "proceed"


def test_the_langchain_respond_tool_is_the_agent_and_bound_to_its_conversation(guard):
    asked = guard.clarify("c1", "Set up the server", "Which region should it run in?")
    other = guard.clarify("c2", "Set up the server", "Which region should it run in?")
    tools = {t.name: t for t in make_tools(guard, conversation_id="c1")}
    assert "responder" not in tools["respond"].args  # the model cannot claim to be an operator

    def run(esc_id: str) -> str:
        return tools["respond"].invoke({"type": "tool_call", "id": "1", "name": "respond",
                                        "args": {"escalation_id": esc_id, "answer": "eu"}}).content

    assert run(other.escalation_id).startswith("Error:") and "does not belong to conversation 'c1'" in run(other.escalation_id)
    assert json.loads(run(asked.escalation_id))["action"] == "proceed"


# --- over HTTP: tokens carry the principal ---
def http(base: str, token: str) -> Client:
    return Client(streamable_http_client(f"{base}/mcp", http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30)))


@pytest.fixture
def principals(serve, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"agent bot-1 {BOT_1}\nagent bot-2 {BOT_2}\noperator ana {ANA}  # the supervisor\n")
    return serve(token=None, extra=["--tokens", str(tokens)])


@pytest.mark.slow
async def test_one_agent_cannot_read_use_or_answer_another_agents_conversation(principals):
    base = principals.base
    async with http(base, BOT_1) as one:
        asked = await call(one, "clarify", conversation_id="chat-1", request="Set up the server",
                           question="Which region should it run in?")
    async with http(base, BOT_2) as two:
        answer = await refused(two, "respond", escalation_id=asked["escalation_id"], answer="us-east-1")
        use = await refused(two, "escalate", conversation_id="chat-1", request="Deploy the new build", context=PROD)
        with pytest.raises(MCPError, match="belongs to another agent"):
            await two.read_resource("escalation://conversations/chat-1")
    assert "belongs to another agent" in answer and "belongs to another agent" in use
    async with http(base, BOT_1) as one:
        history = json.loads((await one.read_resource("escalation://conversations/chat-1")).contents[0].text)
        assert [e["id"] for e in history["escalations"]] == [asked["escalation_id"]]
        made = await handoff(one, "chat-2")
    async with http(base, ANA) as supervisor:  # an operator token may answer the hand-off
        back = await call(supervisor, "respond", escalation_id=made["escalation_id"], answer="I took it over")
    assert back["action"] == "proceed"
    assert Store(principals.db).escalation(made["escalation_id"])["answered_by"] == "ana"


@pytest.mark.slow
async def test_the_shared_token_is_an_agent_on_mcp(serve):
    served = serve()  # ESCALATION_MATRIX_TOKEN only
    from serving import OPERATOR_TOKEN

    async with http(served.base, OPERATOR_TOKEN) as client:
        made = await handoff(client, "chat-9")
        message = await refused(client, "respond", escalation_id=made["ref"], answer="mine now")
    assert "hand-off" in message


@pytest.mark.slow
async def test_reports_over_http_are_for_operators(principals):
    async with http(principals.base, BOT_1) as one:
        await call(one, "clarify", conversation_id="chat-1", request="Set up the server",
                   question="Which region should it run in?")
        with pytest.raises(MCPError, match="for operators"):
            await one.read_resource("escalation://reports/daily")
    async with http(principals.base, ANA) as supervisor:
        report = json.loads((await supervisor.read_resource("escalation://reports/daily")).contents[0].text)
    assert report["period"] == "daily"


@pytest.mark.slow
async def test_preferences_over_http_are_for_operators_and_only_peoples_answers_teach_them(principals):
    person = {"person": "dana", "organisation": "acme"}
    async with http(principals.base, BOT_1) as one:
        for i in range(5):  # an agent signed in over HTTP answers its own questions: nothing is learned
            asked = await call(one, "escalate", conversation_id=f"pref-{i}", request="Refresh the demo data",
                               question="May I overwrite the staging database?", context=person, type="decision")
            await call(one, "respond", escalation_id=asked["ref"], action="approve")
        message = await refused(one, "preferences")
        last = await call(one, "escalate", conversation_id="pref-9", request="Refresh the demo data",
                          question="May I overwrite the staging database?", context=person, type="decision")
    assert "for operators" in message
    async with http(principals.base, ANA) as supervisor:
        before = await call(supervisor, "preferences")
        await call(supervisor, "respond", escalation_id=last["escalation_id"], action="approve")  # a person's answer
        after = await call(supervisor, "preferences")
    assert before["preferences"] == []
    assert {(p["scope"], p["scope_id"]) for p in after["preferences"]} == {("person", "dana"), ("organisation", "acme")}


@pytest.mark.slow
async def test_batches_over_http_are_for_operators(principals):
    person = {"person": "erin"}
    async with http(principals.base, BOT_1) as one:
        asked = [await call(one, "escalate", conversation_id=f"batch-{i}", request="Configure the export service",
                            question=q, context=person, type="decision")
                 for i, q in enumerate(["Should exports retry 3 or 5 times?", "Should exports run hourly or daily?"])]
        assert asked[0]["queued"] and asked[1]["batch_id"] == asked[0]["batch_id"]
        seen = await refused(one, "batches")
        approved = await refused(one, "answer_batch", batch_id=asked[0]["batch_id"])
    assert "for the person or an operator" in seen and "for the person or an operator" in approved
    async with http(principals.base, ANA) as supervisor:
        listed = await call(supervisor, "batches", person="erin")
        done = await call(supervisor, "answer_batch", batch_id=asked[0]["batch_id"])
    assert listed["batches"][0]["items"] == 2 and len(done["answered"]) == 2 and done["status"] == "answered"
