"""The server answers initialize and tools/list while the model is still loading; the first call
that classifies waits for it; a failed load is a clear tool error, and the server keeps serving.
The model load is simulated by a factory that blocks until the test releases it (no timing)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store
from escalation_matrix.warmup import BackgroundClassifier, ModelUnavailableError


def gated(classifier, gate: threading.Event) -> BackgroundClassifier:
    def build():
        gate.wait(30)
        return classifier
    return BackgroundClassifier(build)


async def test_tools_are_listed_before_the_model_is_ready_and_classify_waits(policy, fake_classifier, db_path):
    gate = threading.Event()
    background = gated(fake_classifier, gate)
    guard = ConversationGuard(policy, background, Store(db_path))  # type: ignore[arg-type]
    async with Client(build_server(guard=guard)) as client:
        tools = await client.list_tools()
        assert "classify" in {t.name for t in tools.tools} and not background.ready
        pending = asyncio.create_task(client.call_tool("classify", {"request": "Deploy the new build"}))
        await asyncio.sleep(0.2)
        assert not pending.done()  # waiting for the model
        gate.set()
        result = await asyncio.wait_for(pending, 30)
    assert not result.is_error and background.ready


async def test_a_model_that_fails_to_load_is_a_clear_error_and_the_server_keeps_serving(policy, db_path):
    def broken():
        raise OSError("model file missing")

    guard = ConversationGuard(policy, BackgroundClassifier(broken), Store(db_path))  # type: ignore[arg-type]
    async with Client(build_server(guard=guard)) as client:
        result = await client.call_tool("classify", {"request": "Deploy the new build"})
        assert result.is_error and "model failed to load" in result.content[0].text
        assert "OSError: model file missing" in result.content[0].text
        matrix = await client.read_resource("escalation://matrix")  # what needs no model still works
    assert matrix.contents


def test_wait_with_a_timeout_says_the_model_is_still_loading(fake_classifier):
    gate = threading.Event()
    background = gated(fake_classifier, gate)
    with pytest.raises(ModelUnavailableError, match="still loading"):
        background.wait(0.05)
    gate.set()
    assert background.wait(30) is fake_classifier
    assert background.classify("Deploy the new build").request == "Deploy the new build"
