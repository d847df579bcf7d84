"""Hot reload on a real SQLite file with the fake embedder: an edited phrase is served after a
reload, a bad edit keeps the old policy and is reported (log and the policy://status resource over
the in-memory MCP client), and the watcher thread reloads on a file change, on the `reload`
command and on SIGHUP."""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import pytest
from mcp import Client

from escalation_matrix.classifier import Classifier
from escalation_matrix.embedder import get_embedder
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.reload import Reloader, request_reload
from escalation_matrix.store import Store
from test_cli_core import run

PROD = {"environment": "production"}
OLD = "I can't perform that action, but I can help if you adjust the request."
NEW = "That is outside what I may do here, but I can help with a changed request."


@pytest.fixture
def guard(data_copy, db_path):
    policy = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    return ConversationGuard(policy, Classifier(policy, embedder=get_embedder("fake")), Store(db_path))


def edit_phrase(data_copy, old: str, new: str) -> None:
    path = data_copy / "phrases/en/phrases.yaml"
    path.write_text(path.read_text().replace(old, new, 1))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a distinct mtime even on coarse clocks


def wait_for(check, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_an_edited_phrase_is_served_after_a_reload(guard, data_copy):
    assert guard.escalate("c1", "Deploy the new build", context=PROD).phrase == OLD
    edit_phrase(data_copy, OLD, NEW)
    status = Reloader(guard).reload("test")
    assert status["ok"] and status["reloads"] == 1
    assert guard.escalate("c2", "Deploy the new build", context=PROD).phrase == NEW


def test_a_bad_edit_keeps_the_old_policy_and_is_reported(guard, data_copy, caplog):
    edit_phrase(data_copy, OLD, '"Sorry, {{ requst }}"')
    with caplog.at_level(logging.WARNING, logger="escalation_matrix.reload"):
        status = Reloader(guard).reload("test")
    assert not status["ok"] and any("'requst' is undefined" in p for p in status["problems"])
    assert "still serving the policy loaded at" in caplog.text
    assert guard.escalate("c1", "Deploy the new build", context=PROD).phrase == OLD  # the old policy serves


async def test_policy_status_resource_reports_the_refused_reload(guard, data_copy):
    reloader = Reloader(guard)
    path = data_copy / "policies/conversation.yaml"
    path.write_text(path.read_text().replace("handoff_after: 3", "handoff_after: three"))
    reloader.reload("test")
    async with Client(build_server(guard=guard)) as client:
        status = json.loads((await client.read_resource("policy://status")).contents[0].text)
        served = await client.call_tool("escalate", {"conversation_id": "m", "request": "Deploy the new build",
                                                     "context": PROD})
    assert status["ok"] is False and any("handoff_after" in p for p in status["problems"])
    assert not served.is_error


def test_the_watcher_reloads_on_a_file_change_the_command_and_sighup(guard, data_copy, db_path):
    reloader = Reloader(guard, interval=0.05).start()
    try:
        edit_phrase(data_copy, OLD, NEW)
        assert wait_for(lambda: guard.policy_status["reloads"] == 1), guard.policy_status
        assert guard.policy_status["reason"] == "file change"
        result = run("reload", "--db", str(db_path), root=data_copy)
        assert result.exit_code == 0, result.output
        assert wait_for(lambda: guard.policy_status["reloads"] == 2), guard.policy_status
        assert guard.policy_status["reason"] == "reload command"
        if reloader.install_sighup():
            os.kill(os.getpid(), signal.SIGHUP)
            assert wait_for(lambda: guard.policy_status["reloads"] == 3), guard.policy_status
            assert guard.policy_status["reason"] == "SIGHUP"
    finally:
        reloader.stop()
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_the_reload_command_refuses_a_bad_edit_and_requests_nothing(data_copy, db_path):
    path = data_copy / "policies/conversation.yaml"
    path.write_text(path.read_text().replace("handoff_after: 3", "handoff_after: three"))
    result = run("reload", "--db", str(db_path), root=data_copy)
    assert result.exit_code == 2 and "conversation.yaml: handoff_after" in result.output
    assert request_reload(Store(db_path)) == 1  # the refused command did not count
