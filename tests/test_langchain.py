"""The LangChain adapter: typed tools over the conversation guard, driven by a real tool-calling loop
with a fake chat model that replays tool calls. The guard runs on the real model: whether a
re-asked question counts as the same one is a semantic judgment."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from typing import Iterator

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

import escalation_matrix
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import ESCALATION_PROTOCOL, make_tools
from escalation_matrix.models import EscalationResult
from escalation_matrix.render import card
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

REQUEST = "Write something for the website."
QUESTION = "Which deliverable should I write for the website?"
SAME_QUESTION = "Which deliverable do you want me to write for the website?"
OPTIONS = ["Product description", "Landing page copy", "Blog post"]


class ToolCallingFake(GenericFakeChatModel):
    """Replays scripted AI messages; binding tools is a no-op so it fits a tool-calling loop."""

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def guard(policy, classifier, db_path):
    return ConversationGuard(policy, classifier, Store(db_path))


def call(name: str, args: dict, i: int = 0) -> dict:
    return {"name": name, "args": args, "id": f"call-{name}-{i}", "type": "tool_call"}


def run_loop(model, tools, messages: list[BaseMessage], limit: int = 12) -> list[BaseMessage]:
    """The standard loop: invoke the model, run every tool call it makes, feed ToolMessages back."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    for _ in range(limit):
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return messages
        for tool_call in reply.tool_calls:
            messages.append(by_name[tool_call["name"]].invoke(tool_call))
    raise AssertionError("the loop did not finish")


def tool_json(messages: list[BaseMessage], name: str, nth: int = -1) -> dict:
    found = [m for m in messages if isinstance(m, ToolMessage) and m.name == name]
    return json.loads(found[nth].content)


@pytest.mark.model
def test_the_five_tools_have_typed_described_arguments(guard):
    tools = make_tools(guard)
    assert sorted(t.name for t in tools) == ["check_scope", "clarify", "classify", "escalate", "respond"]
    for tool in tools:
        schema = tool.tool_call_schema.model_json_schema()
        assert len(tool.description) > 80, tool.name
        assert schema["properties"], tool.name
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    clarify = next(t for t in tools if t.name == "clarify").tool_call_schema.model_json_schema()
    assert set(clarify["required"]) == {"conversation_id", "request", "question"}


@pytest.mark.model
def test_a_bound_conversation_id_is_not_asked_of_the_model(guard):
    tools = {t.name: t for t in make_tools(guard, conversation_id="chat-7")}
    schema = tools["escalate"].tool_call_schema.model_json_schema()
    assert "conversation_id" not in schema["properties"]
    message = tools["clarify"].invoke(call("clarify", {"request": REQUEST, "question": QUESTION}))
    assert json.loads(message.content)["conversation_id"] == "chat-7"


@pytest.mark.model
def test_tool_loop_escalates_gets_the_answer_and_proceeds_without_re_asking(guard):
    history: list[BaseMessage] = [SystemMessage(ESCALATION_PROTOCOL), HumanMessage(REQUEST)]

    def script() -> Iterator[AIMessage]:
        yield AIMessage("", tool_calls=[call("clarify", {"request": REQUEST, "question": QUESTION, "options": OPTIONS})])
        escalation = tool_json(history, "clarify")
        assert escalation["action"] == "escalate"
        # the person answers in chat; the model records it
        history.append(HumanMessage("Landing page copy, please."))
        yield AIMessage("", tool_calls=[call("respond", {"escalation_id": escalation["escalation_id"],
                                                         "answer": "Landing page copy"})])
        # the model tries to ask the same thing again, in other words
        yield AIMessage("", tool_calls=[call("clarify", {"request": REQUEST, "question": SAME_QUESTION}, 2)])
        yield AIMessage(f"Drafting: {tool_json(history, 'clarify')['answer']}.")

    run_loop(ToolCallingFake(messages=script()), make_tools(guard, conversation_id="chat-1"), history)
    first, again = tool_json(history, "clarify", 0), tool_json(history, "clarify", 1)
    assert first["action"] == "escalate" and first["phrase"].startswith("Can you clarify")
    assert tool_json(history, "respond")["action"] == "proceed"
    assert again["action"] == "proceed" and again["answer"] == "Landing page copy"
    assert "already answered" in again["instruction"]
    assert history[-1].content == "Drafting: Landing page copy."
    assert len(guard.store.escalations("conversation_id = ?", ("chat-1",))) == 1


@pytest.mark.model
def test_tool_errors_come_back_as_messages_and_the_loop_goes_on(guard):
    history: list[BaseMessage] = [HumanMessage(REQUEST)]
    script = iter([
        AIMessage("", tool_calls=[call("respond", {"escalation_id": "ESC-1999-404", "answer": "yes"})]),
        AIMessage("", tool_calls=[call("clarify", {"request": REQUEST}, 1)]),
        AIMessage("", tool_calls=[call("clarify", {"request": REQUEST, "question": "   "}, 2)]),
        AIMessage("I will ask differently."),
    ])
    run_loop(ToolCallingFake(messages=script), make_tools(guard, conversation_id="chat-2"), history)
    errors = [m for m in history if isinstance(m, ToolMessage)]
    assert [m.status for m in errors] == ["error", "error", "error"]
    assert "ESC-1999-404" in errors[0].content and "not found" in errors[0].content
    assert "question: Field required" in errors[1].content
    assert "question is empty" in errors[2].content
    assert all(m.content.startswith("Error:") for m in errors)
    assert history[-1].content == "I will ask differently."


@pytest.mark.model
def test_the_artifact_is_the_library_result_and_renders_the_same_card(guard, policy):
    tools = {t.name: t for t in make_tools(guard, conversation_id="chat-3")}
    message = tools["clarify"].invoke(call("clarify", {"request": REQUEST, "question": QUESTION, "options": OPTIONS}))
    assert isinstance(message.artifact, EscalationResult)
    assert EscalationResult.model_validate_json(message.content) == message.artifact
    record = guard.store.escalation(message.artifact.escalation_id)
    assert card(message.artifact, policy, store=guard.store) == card(
        EscalationResult.model_validate_json(message.content), policy, request=record["request"])


@pytest.mark.model
def test_tools_share_state_with_the_library_guard(guard, policy, db_path):
    tools = {t.name: t for t in make_tools(guard, conversation_id="chat-4")}
    made = tools["clarify"].invoke(call("clarify", {"request": REQUEST, "question": QUESTION})).artifact
    other = ConversationGuard(policy, guard.classifier, Store(db_path))  # e.g. the MCP server's
    other.respond(made.escalation_id, "Blog post")
    again = tools["clarify"].invoke(call("clarify", {"request": REQUEST, "question": SAME_QUESTION}, 1)).artifact
    assert (again.action.value, again.answer) == ("proceed", "Blog post")


@pytest.mark.slow
def test_the_library_never_imports_langchain():
    modules = [m.name for m in pkgutil.walk_packages(escalation_matrix.__path__, "escalation_matrix.")
               if m.name != "escalation_matrix.langchain" and "__main__" not in m.name]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('langchain')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_batch_tools_show_the_card_and_relay_approve_selected_in_a_tool_loop(policy, fake_classifier, db_path):
    """Opt-in batch tools: two questions for alice are queued in one batch; the loop lists it (the
    card offers approve all / approve selected), relays the person's 'approve the first one', and
    the agent's next escalate of that question proceeds with the approval."""
    guard = ConversationGuard(policy, fake_classifier, Store(db_path))
    tools = make_tools(guard, conversation_id="chat-7", batches=True)
    assert [t.name for t in tools][-2:] == ["batches", "answer_batch"]
    assert [t.name for t in make_tools(guard)] == ["classify", "check_scope", "clarify", "escalate", "respond"]
    questions = ["Should the retry limit be 3 or 5?", "Which queue name do you prefer for the exports?"]
    history: list[BaseMessage] = [SystemMessage(ESCALATION_PROTOCOL), HumanMessage("Set up the export worker")]

    def script() -> Iterator[AIMessage]:
        for i, question in enumerate(questions):
            yield AIMessage("", tool_calls=[call("escalate", {"request": "Set up the export worker", "question": question,
                                                              "type": "decision", "context": {"person": "alice"},
                                                              "task_id": f"t{i}"}, i)])
        queued = tool_json(history, "escalate", 0)
        assert queued["queued"] and queued["batch_id"]
        yield AIMessage("", tool_calls=[call("batches", {"batch_id": queued["batch_id"]})])
        history.append(HumanMessage("Approve the retry limit one only."))
        yield AIMessage("", tool_calls=[call("answer_batch", {"batch_id": queued["batch_id"],
                                                              "items": [queued["escalation_id"]]})])
        yield AIMessage("", tool_calls=[call("escalate", {"request": "Set up the export worker", "question": questions[0],
                                                          "type": "decision", "context": {"person": "alice"},
                                                          "task_id": "t0"}, 9)])
        yield AIMessage("Done.")

    run_loop(ToolCallingFake(messages=script()), tools, history)
    shown = tool_json(history, "batches")
    assert shown["card"]["kind"] == "batch" and len(shown["items"]) == 2
    assert "approve" in shown["card"]["markdown"].lower()
    answered = tool_json(history, "answer_batch")
    first, second = tool_json(history, "escalate", 0), tool_json(history, "escalate", 1)
    assert answered["open_left"] == 1 and first["escalation_id"] in json.dumps(answered["answered"])
    assert second["escalation_id"] not in json.dumps(answered["answered"])
    again = tool_json(history, "escalate", -1)
    assert again["action"] == "proceed" and again["escalation_id"] == first["escalation_id"]
    assert guard.store.escalation(first["escalation_id"])["status"] == "answered"
    assert guard.store.escalation(second["escalation_id"])["status"] == "awaiting_response"  # not selected


def test_batch_tool_errors_come_back_as_messages(policy, fake_classifier, db_path):
    guard = ConversationGuard(policy, fake_classifier, Store(db_path))
    tools = {t.name: t for t in make_tools(guard, batches=True)}
    missing = tools["answer_batch"].invoke(call("answer_batch", {"batch_id": 999}))
    assert missing.content.startswith("Error:") and "not found" in missing.content
    bad = tools["batches"].invoke(call("batches", {"batch_id": 0}))
    assert bad.content.startswith("Error:") and "batch_id" in bad.content
