"""The real ``escalation-matrix serve`` process over stdio and streamable HTTP: restart, two
processes on one file, bearer auth, and an independent client (the MCP Inspector CLI).

Each server process loads the real model (seconds), so the module shares one HTTP server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from escalation_matrix.store import Store
import servers
from servers import call, serve_http, server_env, stop

pytestmark = [pytest.mark.slow, pytest.mark.model]

TOKEN = "test-token-7d1f"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
DELETE = "Delete all customer email addresses from the database."
# every tool is listed to every client; over HTTP some of them need an operator token when called
AGENT_TOOLS = {"classify", "escalate", "clarify", "check_scope", "respond", "report_item", "preferences",
               "revoke_preference", "batches", "answer_batch"}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mcp") / "state.db"


@pytest.fixture(scope="module")
def http_url(db, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "http.log"
    server = serve_http(["serve", "--transport", "http", "--db", str(db)], server_env(ESCALATION_MATRIX_TOKEN=TOKEN),
                        log, db=db, stdout=subprocess.PIPE)
    yield f"{server.base}/mcp"
    stop(server.proc)
    assert server.proc.stdout is not None and server.proc.stdout.read() == b""  # nothing on stdout, ever


def http_client(url: str) -> Client:
    auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=auth))


def stdio_client(db: Path) -> Client:
    # the first tools/call carries the model load: as long as the HTTP fixture allows a server to start
    return servers.stdio_client(db, read_timeout=300)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_http_refuses_requests_without_the_token(http_url, headers):
    response = httpx2.post(http_url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_http_with_the_token_serves_the_tools(http_url):
    async with http_client(http_url) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await call(client, "check_scope", request=DELETE, conversation_id="http-1")
    assert names == AGENT_TOOLS
    assert (result["in_scope"], result["type"]) == (False, "scope") and result["escalation_id"]


async def test_stdio_state_survives_a_server_restart(tmp_path):
    db = tmp_path / "restart.db"
    async with stdio_client(db) as client:
        first = await call(client, "escalate", conversation_id="restart", request=DELETE)
    async with stdio_client(db) as client:  # a new server process on the same file
        again = await call(client, "escalate", conversation_id="restart", request=DELETE)
        history = await client.read_resource("escalation://conversations/restart")
    assert first["action"] == "escalate" and not first["repeated"]
    assert again["escalation_id"] == first["escalation_id"] and again["repeated"]
    assert [e["id"] for e in json.loads(history.contents[0].text)["escalations"]] == [first["escalation_id"]]


async def test_two_server_processes_on_one_file_create_one_record(http_url, db):
    request = "Export the full customer list with home addresses to a public spreadsheet."
    async with http_client(http_url) as over_http, stdio_client(db) as over_stdio:
        calls = [call(client, "escalate", conversation_id="race", request=request)
                 for _ in range(12) for client in (over_http, over_stdio)]
        results = await asyncio.gather(*calls)
    assert len(results) == 24
    assert len({r["escalation_id"] for r in results}) == 1
    assert sum(not r["repeated"] for r in results) == 1
    assert len(Store(db).escalations("conversation_id = ?", ("race",))) == 1


def inspector(url: str, *args: str) -> dict:
    command = ["npx", "-y", INSPECTOR, "--cli", url, "--header", f"Authorization: Bearer {TOKEN}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed: the MCP Inspector CLI needs it")
def test_mcp_inspector_lists_and_calls_every_tool(http_url):
    listed = inspector(http_url, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == AGENT_TOOLS

    def tool(name: str, **args: str) -> dict:
        flags = [item for key, value in args.items() for item in ("--tool-arg", f"{key}={value}")]
        result = inspector(http_url, "--method", "tools/call", "--tool-name", name, *flags)
        assert result["isError"] is False, result
        return result["structuredContent"]

    assert tool("classify", request="I want to kill myself")["action"] == "stop"
    escalated = tool("escalate", conversation_id="inspector", request=DELETE)
    assert escalated["action"] == "escalate" and escalated["escalation_id"]
    asked = tool("clarify", conversation_id="inspector", request="Set up the new server", task_id="server",
                 question="Which region should the server be deployed in?")
    assert asked["action"] == "escalate" and asked["severity"] == "L1"  # the Inspector does no elicitation
    technical = tool("check_scope", request="Run a SQL query to calculate average order value from last month.",
                     capabilities='["web_access"]')
    assert (technical["in_scope"], technical["type"]) == (False, "technical")
    answered = tool("respond", escalation_id=asked["ref"], answer="eu-west-1")
    assert (answered["action"], answered["answer"]) == ("proceed", "eu-west-1")
    item = tool("report_item", item_id="brand-12345", iterations="10")
    assert item["escalated"] and item["trigger"] == "iteration_limit"
