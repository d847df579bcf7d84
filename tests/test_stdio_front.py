"""The stdio front answers the handshake and tools/list from what the same server answered
before, while the server is still loading: with a fake server process (ordering proves who
answered), and with the real ``escalation-matrix serve`` over the real MCP client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from escalation_matrix.stdio_front import fingerprint

ROOT = Path(__file__).resolve().parents[1]

# a server that takes a second to load, says "ready" first, then answers every request
FAKE = r"""
import json, os, sys, time
sys.path.insert(0, {server!r})
from pathlib import Path
from escalation_matrix.stdio_front import Front
front = Front(Path({cache!r}))
front.start()
try:
    time.sleep(1.0)
    print(json.dumps({{"jsonrpc": "2.0", "method": "notifications/message", "params": {{"ready": True}}}}), flush=True)
    for line in sys.stdin:
        m = json.loads(line)
        if "id" in m:
            result = {{"method": m["method"], "by": "server"}}
            if m["method"] == "tools/list":
                result["tools"] = ["classify", "escalate"]
            print(json.dumps({{"jsonrpc": "2.0", "id": m["id"], "result": result}}), flush=True)
    print(json.dumps({{"jsonrpc": "2.0", "method": "notifications/message", "params": {{"bye": True}}}}), flush=True)
finally:
    front.finish()
"""

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}}
DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META}}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": META}}
CALL = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "classify"}}
OLD_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
OLD_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def session(cache: Path, messages: list[dict]) -> list[dict]:
    """Run the fake server once: send the messages, close stdin, read everything it wrote."""
    code = FAKE.format(server=str(ROOT / "server"), cache=str(cache))
    done = subprocess.run([sys.executable, "-c", code], input="".join(json.dumps(m) + "\n" for m in messages),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def order(out: list[dict]) -> list[str]:
    return ["ready" if m.get("params", {}).get("ready") else "bye" if m.get("params", {}).get("bye")
            else f"{m['id']}:{m['result']['by']}" for m in out]


@pytest.mark.slow
def test_the_second_start_answers_the_handshake_and_the_tool_list_before_the_server_speaks(tmp_path):
    cache = tmp_path / "early.json"
    first = session(cache, [DISCOVER, LIST, CALL])
    # nothing known yet: the server answers everything, after it is ready
    assert order(first) == ["ready", "1:server", "2:server", "3:server", "bye"]
    known = json.loads(cache.read_text())
    assert set(known) == {"server/discover 2026-07-28", "tools/list 2026-07-28"}

    second = session(cache, [DISCOVER, LIST, CALL])
    # answered at once with what the server answered last time; the server's own answers to the
    # same ids are dropped (each id answered once), the call is still the server's
    assert [m.get("id") for m in second].count(1) == 1 and [m.get("id") for m in second].count(2) == 1
    assert second[0] == {"jsonrpc": "2.0", "id": 1, "result": first[1]["result"]}
    assert second[1] == {"jsonrpc": "2.0", "id": 2, "result": first[2]["result"]}
    assert order(second)[2:] == ["ready", "3:server", "bye"]  # the server's last words still get out


@pytest.mark.slow
def test_older_protocols_key_the_tool_list_by_the_version_initialize_asked_for(tmp_path):
    cache = tmp_path / "early.json"
    session(cache, [OLD_INIT, OLD_LIST])
    assert set(json.loads(cache.read_text())) == {"initialize 2025-06-18", "tools/list 2025-06-18"}
    again = session(cache, [OLD_INIT, OLD_LIST])
    assert [m.get("id") for m in again[:2]] == [1, 2] and again[2]["params"] == {"ready": True}
    # another version is not answered from this one's answers
    newer = session(cache, [DISCOVER, LIST])
    assert order(newer)[:1] == ["ready"]


@pytest.mark.slow
def test_a_paged_tool_list_and_a_damaged_cache_go_to_the_server(tmp_path):
    cache = tmp_path / "early.json"
    session(cache, [DISCOVER, LIST])
    paged = dict(LIST, params={**LIST["params"], "cursor": "abc"})
    out = session(cache, [DISCOVER, paged])
    # the handshake is answered before the server is ready (the front's copy of its answer); the
    # later page goes to the server
    assert order(out) == ["1:server", "ready", "2:server", "bye"]
    # a request without what the server requires of it gets the server's answer (its error)
    bare = {**DISCOVER, "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}
    assert order(session(cache, [bare]))[:2] == ["ready", "1:server"]
    cache.write_text("{not json")
    assert order(session(cache, [DISCOVER]))[:2] == ["ready", "1:server"]


def test_the_key_follows_policy_files_and_settings_but_not_the_database(tmp_path, monkeypatch):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "rules.yaml").write_text("rules: []\n")
    monkeypatch.delenv("ESCALATION_MATRIX_LOCALE", raising=False)
    base = fingerprint(["serve", "--db", "a.db"], [policies])
    assert fingerprint(["serve", "--db", "b.db"], [policies]) == base
    assert fingerprint(["serve", "--db=c.db"], [policies]) == base
    monkeypatch.setenv("ESCALATION_MATRIX_DB", "/elsewhere.db")
    assert fingerprint(["serve"], [policies]) == base
    monkeypatch.setenv("ESCALATION_MATRIX_LOCALE", "de")
    assert fingerprint(["serve"], [policies]) != base
    monkeypatch.delenv("ESCALATION_MATRIX_LOCALE")
    (policies / "rules.yaml").write_text("rules: [{name: x}]\n")
    assert fingerprint(["serve"], [policies]) != base
    assert fingerprint(["serve", "--locale", "de"], [policies]) != fingerprint(["serve"], [policies])


@pytest.mark.slow
@pytest.mark.model
async def test_the_real_server_learns_and_then_answers_early(tmp_path):
    from servers import stdio_client

    cache = tmp_path / "cache"
    listed = []
    for n in range(2):
        async with stdio_client(tmp_path / f"{n}.db", 300, ESCALATION_MATRIX_CACHE=str(cache)) as client:
            tools = await client.list_tools()
            listed.append(sorted(t.model_dump_json() for t in tools.tools))
            result = await client.call_tool("classify", {"request": "Delete the production database"})
            assert not result.is_error and result.structured_content["type"] == "scope"  # destroying_production
    assert listed[0] == listed[1] and len(listed[0]) >= 5
    [early] = (cache / "stdio").glob("early-*.json")
    assert {k.split()[0] for k in json.loads(early.read_text())} == {"server/discover", "tools/list"}

    async with stdio_client(tmp_path / "off.db", 300, ESCALATION_MATRIX_EARLY_ANSWERS="0",
                            ESCALATION_MATRIX_CACHE=str(tmp_path / "off")) as client:
        assert len((await client.list_tools()).tools) == len(listed[0])
    assert not (tmp_path / "off" / "stdio").exists()


@pytest.mark.slow
@pytest.mark.model
def test_a_client_that_leaves_while_the_model_loads_gets_a_clean_exit(tmp_path):
    """stdin closes a moment after start, the model still loading: the server answers what it was
    asked and exits with status 0 (the encoder's threads used to be torn down under the load)."""
    from servers import CLI, server_env

    done = subprocess.run([CLI, "serve", "--db", str(tmp_path / "e.db")], input=json.dumps(DISCOVER) + "\n",
                          capture_output=True, text=True, timeout=120,
                          env=server_env(ESCALATION_MATRIX_CACHE=str(tmp_path / "cache")))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[0])["id"] == 1
