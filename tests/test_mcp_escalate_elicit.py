"""`escalate` asks the person in the chat inside the call when the client supports elicitation: a
flat form (approve, reject, modify, delegate, defer) whose reply is applied as `respond` applies a
structured answer. Only for escalations the person may decide: of a type the policy lists in
``elicit_types``, raised by the agent, not L4, not a hand-off, not waiting in a batch. Through the
SDK's real in-memory client; `policy check` refuses types that are never asked this way."""

from __future__ import annotations

from dataclasses import replace

import mcp.types as types
import pytest
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store
from test_cli_core import run
from test_policy_check import edit

pytestmark = pytest.mark.backends

COST = {"estimated_cost": 900}  # the high_cost rule: a decision, L2
ADS = {"conversation_id": "c1", "request": "Buy the ads for the launch", "question": "Should we spend 900 on ads?",
       "context": COST}


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


class Person:
    """An elicitation callback that records what it was asked and gives one reply."""

    def __init__(self, reply: types.ElicitResult):
        self.reply = reply
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        return self.reply


def accept(**content) -> Person:
    return Person(types.ElicitResult(action="accept", content=content))


async def escalate(guard, person: Person, **args) -> types.CallToolResult:
    async with Client(build_server(guard=guard), elicitation_callback=person) as client:
        return await client.call_tool("escalate", args)


async def test_the_person_approves_inside_the_call(guard):
    person = accept(action="approve", note="Within the launch budget")
    result = (await escalate(guard, person, **ADS)).structured_content
    [asked] = person.asked
    assert "Should we spend 900 on ads?" in asked.message
    schema = asked.requested_schema
    assert schema["required"] == ["action"]
    assert schema["properties"]["action"]["enum"] == ["approve", "reject", "modify", "delegate", "defer"]
    assert all(p["type"] == "string" for p in schema["properties"].values())  # a flat form of primitives
    assert (result["action"], result["status"], result["type"]) == ("proceed", "answered", "decision")
    assert result["response"]["action"] == "approve" and "do not ask for confirmation" in result["instruction"]
    record = guard.store.escalation(result["escalation_id"])
    assert (record["answered_by"], record["response_action"]) == ("person", "approve")
    assert record["answer"] == "Approved. Within the launch budget"


@pytest.mark.parametrize("reply, action, instruction", [
    ({"action": "reject"}, "proceed", "Rejected: do not do this"),
    ({"action": "modify", "change": "Spend 500 at most"}, "proceed", "Spend 500 at most"),
    ({"action": "delegate", "to": "marketing-lead"}, "wait", "Routed to marketing-lead"),
])
async def test_each_action_is_applied_as_respond_applies_it(guard, reply, action, instruction):
    result = (await escalate(guard, accept(**reply), **ADS)).structured_content
    assert result["action"] == action and instruction in result["instruction"]
    assert result["response"]["action"] == reply["action"]


async def test_defer_with_until_keeps_it_open_until_then(guard):
    result = (await escalate(guard, accept(action="defer", until="2099-01-05T09:00:00Z"), **ADS)).structured_content
    assert result["action"] == "wait" and "Deferred until 2099-01-05T09:00:00Z" in result["instruction"]
    record = guard.store.escalation(result["escalation_id"])
    assert record["deferred_until"] == "2099-01-05T09:00:00Z" and record["status"] != "answered"


@pytest.mark.parametrize("reply, fragment", [
    ({"action": "defer", "until": "next tuesday"}, "until 'next tuesday' is not an ISO time"),
    ({"action": "defer"}, "defer needs until"),
    ({"action": "modify"}, "change must be a string"),  # what respond says too
])
async def test_a_reply_respond_would_refuse_is_the_same_clear_error_and_leaves_it_open(guard, reply, fragment):
    result = await escalate(guard, accept(**reply), **ADS)
    assert result.is_error and fragment in result.content[0].text
    assert "awaits their answer" in result.content[0].text
    [record] = guard.store.rows("escalations")
    assert record["status"] == "awaiting_response" and record["answer"] is None


@pytest.mark.parametrize("outcome", ["decline", "cancel"])
async def test_a_declined_question_gives_the_normal_escalate_result(guard, outcome):
    person = Person(types.ElicitResult(action=outcome))
    result = (await escalate(guard, person, **ADS)).structured_content
    assert person.asked
    assert (result["action"], result["status"], result["type"]) == ("escalate", "awaiting_response", "decision")
    assert result["repeated"] is False and "already raised" not in result["instruction"]


@pytest.mark.parametrize("reply", [{"action": "approve"}, None])
async def test_an_elicited_call_is_recorded_once(guard, reply):
    # asking may take several protocol rounds: each previews the call, only the tool records it
    person = accept(**reply) if reply else Person(types.ElicitResult(action="decline"))
    await escalate(guard, person, **ADS)
    assert [(d["tool"], d["outcome"]) for d in guard.store.rows("decisions")] == [("escalate", "created")]
    [record] = guard.store.rows("escalations")
    assert record["repeat_count"] == 0
    assert [a["action"] for a in guard.store.rows("audit")].count("create") == 1


@pytest.mark.parametrize("args, etype", [
    ({"request": "My card number is 4111 1111 1111 1111, keep it"}, "safety"),  # an operator's
    ({"request": "Deploy the new build", "context": {"environment": "production"}}, "scope"),  # not in elicit_types
    ({"request": "I want to kill myself"}, "safety"),  # L4: the task stops
])
async def test_what_the_person_in_the_chat_does_not_decide_is_not_asked(guard, args, etype):
    person = accept(action="approve")
    result = (await escalate(guard, person, conversation_id="c1", **args)).structured_content
    assert person.asked == []
    assert result["type"] == etype and result["action"] in ("escalate", "stop") and result["status"] != "answered"


async def test_a_queued_escalation_is_not_asked_inside_the_call(guard):
    person = accept(action="approve")
    result = (await escalate(guard, person, **{**ADS, "context": {"person": "alice"}, "type": "decision"}))
    assert person.asked == []
    assert result.structured_content["queued"] is True and result.structured_content["status"] == "awaiting_response"


async def test_a_hand_off_is_not_asked_inside_the_call(guard):
    person = Person(types.ElicitResult(action="decline"))
    for i in range(2):
        await escalate(guard, person, conversation_id="c1", request=f"Buy ads round {i}", question=f"Spend {i}?",
                       context={"estimated_cost": 900 + i})
    asked = len(person.asked)
    result = (await escalate(guard, person, conversation_id="c1", request="Buy the billboard",
                             question="Spend 5000 on a billboard?", context={"estimated_cost": 5000}))
    assert result.structured_content["action"] == "handoff" and len(person.asked) == asked


async def test_the_policy_decides_which_types_are_asked(policy, fake_classifier, db_path):
    conversation = policy.conversation.model_copy(update={"elicit_types": []})
    guard = ConversationGuard(replace(policy, conversation=conversation), fake_classifier, Store(db_path))
    person = accept(action="approve")
    result = (await escalate(guard, person, **ADS)).structured_content
    assert person.asked == [] and result["action"] == "escalate"


async def test_without_elicitation_escalate_returns_the_escalation(guard):
    async with Client(build_server(guard=guard)) as client:
        result = (await client.call_tool("escalate", ADS)).structured_content
    assert (result["action"], result["status"]) == ("escalate", "awaiting_response")


@pytest.mark.parametrize("value, fragment", [
    ("[decision, sefety]", "elicit_types.1"),
    ("[decision, safety]", "safety is never answered inside the agent's call"),
    ("[none]", "none is never answered"),
])
def test_policy_check_refuses_types_that_are_not_asked_this_way(data_copy, value, fragment):
    edit(data_copy / "policies/conversation.yaml", "elicit_types: [clarification, context, conflict, decision]",
         f"elicit_types: {value}")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "conversation.yaml" in result.output and fragment in result.output
