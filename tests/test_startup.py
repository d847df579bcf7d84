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


@pytest.mark.slow
async def test_serve_answers_before_the_model_and_reports_a_failed_load(data_copy, db_path):
    """The real `serve` over stdio loads the model in the background: with a model that cannot load,
    initialize and tools/list still answer, classifying is a clear tool error and what needs no model
    keeps working. (Loading the model first, the process would exit before answering initialize.)"""
    import os
    import sys
    from pathlib import Path

    from mcp import StdioServerParameters

    path = data_copy / "policies/classifier.yaml"
    path.write_text(path.read_text().replace("folder: bundled", f"folder: {data_copy / 'no-such-model'}", 1))
    env = {k: v for k, v in os.environ.items() if k != "ESCALATION_MATRIX_TOKEN"}
    env.update(HF_HUB_OFFLINE="1", ESCALATION_MATRIX_POLICIES=str(data_copy / "policies"),
               ESCALATION_MATRIX_PHRASES=str(data_copy / "phrases"),
               ESCALATION_MATRIX_EMBEDDINGS=str(data_copy / "embeddings"))
    cli = str(Path(sys.executable).with_name("escalation-matrix"))
    params = StdioServerParameters(command=cli, args=["serve", "--db", str(db_path)], env=env)
    async with Client(params, read_timeout_seconds=120) as client:
        tools = await client.list_tools()
        assert "escalate" in {t.name for t in tools.tools}
        result = await client.call_tool("classify", {"request": "Deploy the new build"})
        assert result.is_error and "model failed to load" in result.content[0].text
        matrix = await client.read_resource("escalation://matrix")
    assert matrix.contents


async def test_concurrent_first_calls_wait_for_the_model_and_create_one_record(policy, fake_classifier, db_path):
    """Twelve escalations of one issue arrive while the model loads: all wait, then exactly one
    record is created and the other eleven are repeats of it."""
    gate = threading.Event()
    background = gated(fake_classifier, gate)
    guard = ConversationGuard(policy, background, Store(db_path))  # type: ignore[arg-type]
    async with Client(build_server(guard=guard)) as client:
        calls = [asyncio.create_task(client.call_tool("escalate", {
            "conversation_id": "race", "request": "Deploy the new build", "context": {"environment": "production"}}))
            for _ in range(12)]
        await asyncio.sleep(0.3)
        assert not any(c.done() for c in calls) and not background.ready
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert not any(r.is_error for r in results), [r.content for r in results if r.is_error]
    ids = {r.structured_content["escalation_id"] for r in results}
    assert len(ids) == 1 and sum(not r.structured_content["repeated"] for r in results) == 1
    assert len(guard.store.escalations("conversation_id = ?", ("race",))) == 1
