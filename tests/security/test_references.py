"""Unguessable references: every escalation has a ``ref`` of 128 random bits that agents name it by.
Over HTTP an agent's ``respond`` refuses the sequential ``ESC-YYYY-NNN`` id (enumerable) and accepts
only the ref; operators keep using ids (console, CLI, operator tokens); stdio and in-process callers
may give either. Records made before the migration get a ref when the state file is opened."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3

import httpx2
import pytest
import rawdb
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from escalation_matrix import store as store_module
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

REF = re.compile(r"[0-9a-f]{32}")
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


def http(base: str, token: str) -> Client:
    return Client(streamable_http_client(f"{base}/mcp", http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30)))


@pytest.fixture
def principals(serve, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"agent bot-1 {BOT_1}\nagent bot-2 {BOT_2}\noperator ana {ANA}\n")
    return serve(token=None, extra=["--tokens", str(tokens)])


async def test_every_escalation_the_tools_return_carries_a_random_ref(guard):
    async with Client(build_server(guard=guard)) as client:
        first = await call(client, "clarify", conversation_id="c1", request="Set up the server",
                           question="Which region should it run in?")
        second = await call(client, "clarify", conversation_id="c2", request="Set up the server",
                            question="Which region should it run in?")
        history = json.loads((await client.read_resource("escalation://conversations/c1")).contents[0].text)
        pending = json.loads((await client.read_resource("escalation://pending/c1")).contents[0].text)
    assert REF.fullmatch(first["ref"]) and REF.fullmatch(second["ref"]) and first["ref"] != second["ref"]
    assert first["escalation_id"] not in first["ref"]  # not derived from the sequential id
    assert [e["ref"] for e in history["escalations"]] == [first["ref"]]
    assert [e["ref"] for e in pending["escalations"]] == [first["ref"]]
    stored = rawdb.query(guard.store.path, "SELECT ref FROM escalations WHERE id = ?", (first["escalation_id"],))[0][0]
    assert stored == first["ref"]


async def test_a_stdio_agent_may_answer_by_ref_or_by_id(guard):
    async with Client(build_server(guard=guard)) as client:
        one = await call(client, "clarify", conversation_id="c1", request="Set up the server",
                         question="Which region should it run in?")
        two = await call(client, "clarify", conversation_id="c1", request="Set up the database", task_id="db",
                         question="Which database engine should it use?")
        by_ref = await call(client, "respond", escalation_id=one["ref"], answer="eu-west-1")
        by_id = await call(client, "respond", escalation_id=two["escalation_id"], answer="Postgres")
        guessed = await refused(client, "respond", escalation_id=secrets.token_hex(16), answer="x")
    assert (by_ref["action"], by_ref["answer"], by_ref["escalation_id"]) == ("proceed", "eu-west-1", one["escalation_id"])
    assert by_id["action"] == "proceed" and "not found" in guessed
    assert guard.store.escalation(one["escalation_id"])["answer"] == "eu-west-1"


def test_the_langchain_tools_return_the_ref_and_respond_takes_it(guard):
    tools = {t.name: t for t in make_tools(guard, conversation_id="c1")}

    def run(name: str, **args) -> str:
        return tools[name].invoke({"type": "tool_call", "id": "1", "name": name, "args": args}).content

    asked = json.loads(run("clarify", request="Set up the server", question="Which region should it run in?"))
    assert REF.fullmatch(asked["ref"])
    answered = json.loads(run("respond", escalation_id=asked["ref"], answer="eu-west-1"))
    assert (answered["action"], answered["escalation_id"]) == ("proceed", asked["escalation_id"])


def test_the_card_carries_the_ref(guard):
    from escalation_matrix.render import render

    asked = guard.clarify("c1", "Set up the server", "Which region should it run in?")
    card = json.loads(render(asked, "json", guard.policy))
    assert card["ref"] == asked.ref and REF.fullmatch(card["ref"])


def test_records_made_before_the_migration_get_a_ref_when_opened(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    index = next(i for i, m in enumerate(store_module.MIGRATIONS) if "ADD COLUMN ref TEXT" in m.sql)
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:index])
    old = Store(db)
    with old.transaction() as conn:
        for seq in (1, 2):
            conn.execute("INSERT INTO escalations (id, year, seq, type, trigger, severity, status, created_at, "
                         "updated_at) VALUES (?, 2026, ?, 'clarification', 'unclear_request', 'L1', "
                         "'awaiting_response', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                         (f"ESC-2026-{seq:03d}", seq))
    old.close()
    monkeypatch.undo()
    store = Store(db)
    refs = [store.escalation(f"ESC-2026-{seq:03d}")["ref"] for seq in (1, 2)]
    assert all(REF.fullmatch(r) for r in refs) and refs[0] != refs[1]
    assert store.resolve(refs[1]) == "ESC-2026-002" and store.resolve("ESC-2026-001") == "ESC-2026-001"
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:  # refs are unique
        conn.execute("UPDATE escalations SET ref = ? WHERE id = 'ESC-2026-002'", (refs[0],))


# --- over HTTP ---
@pytest.mark.slow
async def test_an_agent_over_http_must_name_the_escalation_by_its_ref(principals):
    async with http(principals.base, BOT_1) as one:
        asked = await call(one, "clarify", conversation_id="chat-1", request="Set up the server",
                           question="Which region should it run in?")
        by_id = await refused(one, "respond", escalation_id=asked["escalation_id"], answer="us-east-1")
        guessed = await refused(one, "respond", escalation_id=secrets.token_hex(16), answer="us-east-1")
        assert Store(principals.db).escalation(asked["escalation_id"])["status"] == "awaiting_response"
        answered = await call(one, "respond", escalation_id=asked["ref"], answer="eu-west-1")
    assert "name the escalation by its ref" in by_id and "not found" in guessed
    assert (answered["action"], answered["answer"]) == ("proceed", "eu-west-1")
    record = Store(principals.db).escalation(asked["escalation_id"])
    assert (record["answer"], record["answered_by"]) == ("eu-west-1", "bot-1")


@pytest.mark.slow
async def test_the_ref_of_another_agents_escalation_grants_nothing(principals):
    async with http(principals.base, BOT_1) as one:
        asked = await call(one, "clarify", conversation_id="chat-1", request="Set up the server",
                           question="Which region should it run in?")
    async with http(principals.base, BOT_2) as two:
        message = await refused(two, "respond", escalation_id=asked["ref"], answer="us-east-1")
        with pytest.raises(MCPError, match="belongs to another agent"):
            await two.read_resource("escalation://pending/chat-1")
    assert "belongs to another agent" in message
    assert Store(principals.db).escalation(asked["escalation_id"])["answer"] is None


@pytest.mark.slow
async def test_an_operator_token_keeps_using_the_sequential_id(principals):
    async with http(principals.base, BOT_1) as one:
        asked = await call(one, "escalate", conversation_id="chat-3", request="Deploy the new build",
                           context={"environment": "production"})
    async with http(principals.base, ANA) as supervisor:
        answered = await call(supervisor, "respond", escalation_id=asked["escalation_id"], answer="approved")
    assert answered["action"] in ("proceed", "stop")
    assert Store(principals.db).escalation(asked["escalation_id"])["answered_by"] == "ana"
