"""The MCP tools through the SDK's real in-memory client. The fake embedder keeps this fast; the
requests are chosen so that policy rules decide their type."""

from __future__ import annotations

import json

import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
TOOLS = {"classify", "escalate", "clarify", "check_scope", "respond", "report_item", "preferences", "revoke_preference",
         "batches", "answer_batch"}


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


@pytest.fixture
def server(guard):
    return build_server(guard=guard)


async def call(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content


async def test_every_tool_is_described_with_truthful_annotations(server):
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.output_schema
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert "result" not in tool.input_schema["properties"]  # resolver parameters stay server-side
    assert tools["classify"].annotations.read_only_hint and tools["classify"].annotations.idempotent_hint
    assert tools["preferences"].annotations.read_only_hint and tools["preferences"].annotations.idempotent_hint
    assert tools["batches"].annotations.read_only_hint and tools["batches"].annotations.idempotent_hint
    for name in TOOLS - {"classify", "preferences", "batches"}:
        assert tools[name].annotations.read_only_hint is False
    assert tools["respond"].annotations.idempotent_hint is False


async def test_escalate_once_then_repeated(server):
    async with Client(server) as client:
        first = await call(client, "escalate", conversation_id="c1", request="Deploy the new build", context=PROD)
        again = await call(client, "escalate", conversation_id="c1", request="Deploy the new build", context=PROD)
    assert (first["action"], first["type"], first["severity"]) == ("escalate", "scope", "L2")
    assert first["phrase"] == "I can't perform that action, but I can help if you adjust the request."
    assert again["escalation_id"] == first["escalation_id"] and again["repeated"] is True


async def test_respond_then_the_same_question_proceeds_with_the_answer(server):
    async with Client(server) as client:
        asked = await call(client, "clarify", conversation_id="c1", request="Write the launch post",
                           question="Which color palette fits the charts?")
        assert asked["action"] == "escalate" and asked["severity"] == "L1"
        answered = await call(client, "respond", escalation_id=asked["escalation_id"], answer="Brand blues")
        assert answered["action"] == "proceed" and answered["answer"] == "Brand blues"
        assert "do not ask for confirmation" in answered["instruction"]
        again = await call(client, "clarify", conversation_id="c1", request="Write the launch post",
                           question="Which color palette fits the charts?")
    assert (again["action"], again["answer"]) == ("proceed", "Brand blues")


async def test_minor_preference_proceeds_with_default(server):
    async with Client(server) as client:
        result = await call(client, "clarify", conversation_id="c1", request="Write the guide",
                            question="Should headers be in title case or sentence case?")
    assert result["action"] == "proceed" and result["default"] and result["escalation_id"] is None


async def test_third_escalation_hands_off_and_l4_stops(server):
    async with Client(server) as client:
        await call(client, "escalate", conversation_id="c1", request="Deploy the new build", context=PROD)
        await call(client, "escalate", conversation_id="c1", request="Buy the ads", context={"estimated_cost": 900})
        handoff = await call(client, "clarify", conversation_id="c1", request="Write it",
                             question="Which tone do you want?")
        stop = await call(client, "escalate", conversation_id="c2", request="I want to kill myself")
        after = await call(client, "clarify", conversation_id="c2", request="Write it", question="Which tone do you want?")
    assert (handoff["action"], handoff["type"]) == ("handoff", "pattern")
    assert (stop["action"], stop["severity"]) == ("stop", "L4")
    assert (after["action"], after["escalation_id"]) == ("stop", stop["escalation_id"])


async def test_check_scope_and_classify(server, guard):
    async with Client(server) as client:
        scoped = await call(client, "check_scope", request="My card number is 4111 1111 1111 1111, keep it",
                            conversation_id="c1")
        looked = await call(client, "classify", request="I want to kill myself")
    assert scoped["in_scope"] is False and scoped["options"] and scoped["escalation_id"]
    assert (looked["action"], looked["severity"], looked["escalation_id"]) == ("stop", "L4", None)
    assert guard.store.count("escalations") == 1  # classify recorded nothing


@pytest.mark.parametrize("tool, args, fragment", [
    ("escalate", {"conversation_id": "c1", "request": ""}, "request is empty"),
    ("escalate", {"conversation_id": "c1", "request": "x" * 9000}, "at most 8000"),
    ("escalate", {"conversation_id": "c1", "request": 42}, "valid string"),
    ("escalate", {"conversation_id": "c1", "request": "Deploy", "options": [str(i) for i in range(11)]}, "at most 10"),
    ("respond", {"escalation_id": "ESC-2026-404", "answer": "yes"}, "not found"),
    ("clarify", {"conversation_id": "c1", "request": "Write it", "question": ""}, "question is empty"),
])
async def test_bad_input_is_a_tool_error_and_the_server_keeps_serving(server, guard, tool, args, fragment):
    async with Client(server) as client:
        result = await client.call_tool(tool, args)
        assert result.is_error and fragment in result.content[0].text
        ok = await call(client, "classify", request="Write a poem about autumn")
    assert ok["action"] in ("proceed", "escalate", "stop")
    assert guard.store.count("escalations") == 0
    # the bad call wrote nothing; the classify after it counts as one evaluated request (KPI denominator)
    assert [r["tool"] for r in guard.store.rows("decisions")] == ["classify"]


async def test_answering_twice_is_a_clear_error(server):
    async with Client(server) as client:
        asked = await call(client, "escalate", conversation_id="c1", request="Deploy the new build", context=PROD)
        await call(client, "respond", escalation_id=asked["escalation_id"], answer="Prepare it for review")
        second = await client.call_tool("respond", {"escalation_id": asked["escalation_id"], "answer": "again"})
    assert second.is_error and "already answered" in second.content[0].text


async def test_elicitation_answers_the_question_inside_the_call(server, guard):
    seen = []

    async def person(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "Marketing managers"})

    async with Client(server, elicitation_callback=person) as client:
        result = await call(client, "clarify", conversation_id="c1", request="Write the launch post",
                            question="Which customer segment is this for?")
    assert seen and "Which customer segment is this for?" in seen[0]
    assert (result["action"], result["answer"], result["status"]) == ("proceed", "Marketing managers", "answered")
    assert guard.store.escalation(result["escalation_id"])["answered_by"] == "person"


async def test_declined_elicitation_leaves_the_escalation_awaiting(server):
    async def person(context, params):
        return types.ElicitResult(action="decline")

    async with Client(server, elicitation_callback=person) as client:
        result = await call(client, "clarify", conversation_id="c1", request="Write the launch post",
                            question="Which customer segment is this for?")
    assert (result["action"], result["status"]) == ("escalate", "awaiting_response")
    assert result["repeated"] is False  # the call is recorded once, after the person was asked


async def test_without_elicitation_the_escalation_awaits_a_response(server):
    async with Client(server) as client:
        result = await call(client, "clarify", conversation_id="c1", request="Write the launch post",
                            question="Which customer segment is this for?")
    assert (result["action"], result["status"]) == ("escalate", "awaiting_response")


async def test_resources_and_prompt(server):
    async with Client(server) as client:
        await call(client, "escalate", conversation_id="c1", request="Deploy the new build", context=PROD)
        matrix = json.loads((await client.read_resource("escalation://matrix")).contents[0].text)
        history = json.loads((await client.read_resource("escalation://conversations/c1")).contents[0].text)
        prompt = await client.get_prompt("escalation_protocol")
        with pytest.raises(MCPError, match="unknown"):
            await client.read_resource("escalation://conversations/nobody")
    assert len([t for t in matrix["types"] if t != "none"]) == 9
    assert matrix["types"]["safety"]["triggers"]["harmful_intent"]["severity"] == "L4"
    assert [e["type"] for e in history["escalations"]] == ["scope"]
    text = prompt.messages[0].content.text
    assert "escalate once, clearly, with the standard phrase, then proceed" in text.lower()
    assert all(name in text for name in TOOLS)


async def test_report_item_tool_escalates_a_pipeline_item_once(server):
    async with Client(server) as client:
        first = (await client.call_tool("report_item", {"item_id": "brand-1", "iterations": 10})).structured_content
        again = (await client.call_tool("report_item", {"item_id": "brand-1", "iterations": 12})).structured_content
        calm = (await client.call_tool("report_item", {"item_id": "brand-2", "iterations": 2})).structured_content
        bad = await client.call_tool("report_item", {"item_id": "brand-3", "iterations": -1})
    assert first["escalated"] and first["trigger"] == "iteration_limit" and not first["repeated"]
    assert again["escalation_id"] == first["escalation_id"] and again["repeated"]
    assert not calm["escalated"]
    assert bad.is_error


async def test_report_resource_gives_the_period_report(server):
    async with Client(server) as client:
        await client.call_tool("escalate", {"conversation_id": "rep", "request": "Take care of it."})
        report = json.loads((await client.read_resource("escalation://reports/daily")).contents[0].text)
        with pytest.raises(Exception, match="unknown period 'hourly'"):
            await client.read_resource("escalation://reports/hourly")
    assert report["period"] == "daily"


@pytest.mark.parametrize("tool, target, args", [
    ("classify", "classify", {"request": "Deploy it"}),
    ("escalate", "escalate", {"conversation_id": "c1", "request": "Deploy it"}),
    ("clarify", "clarify", {"conversation_id": "c1", "request": "Write it", "question": "Which one?"}),
    ("check_scope", "check_scope", {"request": "Deploy it"}),
    ("respond", "store.escalation", {"escalation_id": "ESC-2026-001", "answer": "yes"}),
])
async def test_an_unexpected_exception_in_a_tool_is_logged_not_leaked(guard, caplog, monkeypatch, tool, target, args):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internal detail /etc/passwd")

    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(guard.store if owner else guard, name, broken)
    async with Client(build_server(guard=guard)) as client:
        result = await client.call_tool(tool, args)
        text = " ".join(getattr(part, "text", "") for part in result.content)
        assert result.is_error and "failed unexpectedly; the server log has the details" in text, text
        assert "secret internal detail" not in text and "Traceback" not in text
        assert "secret internal detail" in caplog.text  # logged for the operator
        other = "check_scope" if tool == "classify" else "classify"
        assert not (await client.call_tool(other, {"request": "Tell me about sourdough"})).is_error  # still serving
