"""Bad input at the edge: every field validated and capped with a message that says what to fix, the
server keeps serving, nothing huge is stored; one bad text never fails the callers batched with it;
LangChain tools never let an exception escape into the agent loop."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from mcp import Client

from escalation_matrix.embedcache import CachingEmbedder
from escalation_matrix.embedder import HashEmbedder
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

HUGE = 10**400


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


@pytest.mark.parametrize("tool, args, fragment", [
    ("escalate", {"conversation_id": "c1", "request": "Deploy it", "context": {"estimated_cost": HUGE}}, "401 digits"),
    ("classify", {"request": "Deploy it", "context": {"estimated_cost": HUGE}}, "401 digits"),
    ("escalate", {"conversation_id": "c1", "request": "Deploy it", "context": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}},
     "nested deeper than 5"),
    ("escalate", {"conversation_id": "c1", "request": "Deploy it", "context": {"notes": "x" * 40_000}}, "at most 16000"),
    ("escalate", {"conversation_id": "c1", "request": "Deploy \ud800 it"}, "unpaired surrogate"),
    ("escalate", {"conversation_id": "c\udfff1", "request": "Deploy it"}, "unpaired surrogate"),
    ("clarify", {"conversation_id": "c1", "request": "Write it", "question": "Which \ud83d tone?"}, "unpaired surrogate"),
    ("escalate", {"conversation_id": "c1", "request": "x" * 5_000_000}, "shorten it"),
    ("batches", {"person": "\ud800"}, "person contains an unpaired surrogate"),
    ("preferences", {"scope_id": "ok \udfff"}, "scope_id contains an unpaired surrogate"),
    ("answer_batch", {"batch_id": 1, "items": ["ESC-1", "ESC-\ud83d"], "action": "approve"},
     "unpaired surrogate"),
    ("report_item", {"item_id": "", "iterations": 1}, "item_id"),
    ("report_item", {"item_id": "   ", "iterations": 1}, "item_id is empty"),
    ("report_item", {"item_id": "i" * 300, "iterations": 1}, "item_id"),
    ("report_item", {"item_id": "brand-1", "iterations": 2**63}, "iterations"),
    ("report_item", {"item_id": "brand-1", "iterations": 1, "failures": HUGE}, "failures"),
    ("report_item", {"item_id": "brand-1", "iterations": 99, "details": "d" * 20_000_000}, "details"),
    ("report_item", {"item_id": "brand-\ud800", "iterations": 99}, "item_id contains an unpaired surrogate"),
])
async def test_bad_input_is_refused_with_what_to_fix_and_nothing_is_stored(guard, tool, args, fragment):
    async with Client(build_server(guard=guard)) as client:
        result = await client.call_tool(tool, args)
        assert result.is_error
        text = result.content[0].text
        assert fragment in text and "failed unexpectedly" not in text, text
        still = await client.call_tool("classify", {"request": "Deploy the new build"})
        assert not still.is_error  # the server keeps serving
    assert guard.store.count("escalations") == 0
    assert guard.store.count("pipeline_items") == 0


async def test_a_large_valid_context_is_stored_whole(guard):
    context = {"environment": "production", "estimated_cost": 2**62, "owners": ["a", "b"]}
    async with Client(build_server(guard=guard)) as client:
        result = await client.call_tool("escalate", {"conversation_id": "c1", "request": "Deploy the new build",
                                                     "context": context})
    assert not result.is_error, result.content


@pytest.mark.parametrize("args", [
    {"request": "Deploy it", "context": {"estimated_cost": HUGE}},
    {"request": "Deploy \ud800 it"},
])
def test_langchain_tools_return_errors_as_messages(guard, args):
    tools = {t.name: t for t in make_tools(guard, conversation_id="c1")}
    for name in ("classify", "escalate"):
        message = tools[name].invoke({"type": "tool_call", "id": "1", "name": name, "args": args})
        assert message.content.startswith("Error:"), message.content


def test_an_unexpected_exception_in_a_langchain_tool_is_logged_not_leaked(guard, caplog, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(guard, "classify", broken)
    tool = {t.name: t for t in make_tools(guard)}["classify"]
    message = tool.invoke({"type": "tool_call", "id": "1", "name": "classify", "args": {"request": "hi"}})
    assert message.content.startswith("Error: classify failed unexpectedly")
    assert "secret internal detail" not in message.content
    assert "secret internal detail" in caplog.text


class PickyEmbedder(HashEmbedder):
    """Fails like a real tokenizer on text that is not valid Unicode, and is slow enough that
    concurrent callers share a batch."""

    def encode(self, texts: list[str]) -> np.ndarray:
        for text in texts:
            text.encode("utf-8")
        time.sleep(0.05)
        return super().encode(texts)


def test_one_bad_text_fails_only_its_own_caller_in_a_batch():
    embedder = CachingEmbedder(PickyEmbedder())
    texts = [f"innocent request number {i}" for i in range(40)] + ["bad \ud800 text"]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(len(texts))

    def one(text: str) -> None:
        barrier.wait()
        try:
            embedder.encode([text])
            outcomes[text] = "ok"
        except UnicodeEncodeError:
            outcomes[text] = "error"

    threads = [threading.Thread(target=one, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.pop("bad \ud800 text") == "error"
    assert set(outcomes.values()) == {"ok"} and len(outcomes) == 40


def test_tool_errors_refuses_unpaired_surrogates_in_positional_and_nested_arguments():
    from mcp.server.mcpserver.exceptions import ToolError

    from escalation_matrix.mcp_ops import tool_errors

    calls = []

    @tool_errors
    def tool(name, items=None):
        calls.append(name)
        return name

    assert tool("fine", items=[{"k": "ok"}]) == "fine"
    for args, kwargs, where in ((("bad \ud800",), {}, "name contains"),
                                (("fine",), {"items": [{"k": "x\udfff"}]}, "items[0].k contains")):
        with pytest.raises(ToolError, match=re.escape(where) + " an unpaired surrogate"):
            tool(*args, **kwargs)
    assert calls == ["fine"]  # the tool never ran on invalid text
