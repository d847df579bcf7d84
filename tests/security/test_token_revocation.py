"""A changed tokens file takes effect without a restart: the real server re-reads it when it changes
(checked on every request), on SIGHUP and on the ``reload`` command, and the console sessions of a
removed or changed token end at once; other principals' sessions go on."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx2
import pytest
from serving import CLI, server_env

from escalation_matrix.access import Principal
from escalation_matrix.http_security import Sessions, TokenTable, _digest

ANA, BOB, ANA_NEW = "ana-operator-token-1111", "bob-operator-token-2222", "ana-operator-token-3333"
BOT, BOT_NEW = "bot-agent-token-44444444", "bot-agent-token-55555555"
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def write_tokens(path, ana=ANA, bob: str | None = BOB, bot=BOT) -> None:
    lines = [f"operator ana {ana}", f"agent bot {bot}"] + ([f"operator bob {bob}"] if bob else [])
    path.write_text("\n".join(lines) + "\n")


def browser(base: str, token: str) -> httpx2.Client:
    client = httpx2.Client(base_url=base, timeout=10)
    assert client.get(f"/console?token={token}", follow_redirects=True).status_code == 200
    return client


def ping(base: str, token: str) -> int:
    """401 when the token is refused; otherwise what the MCP endpoint says (400: no MCP session yet)."""
    return httpx2.post(f"{base}/mcp", json=PING, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
                       timeout=10).status_code


@pytest.fixture
def served(serve, tmp_path):
    tokens = tmp_path / "tokens"
    write_tokens(tokens)
    return serve(token=None, extra=["--tokens", str(tokens)]), tokens


# --- pure: the table and the sessions ---
def test_a_session_is_valid_only_while_its_token_maps_to_its_principal(tmp_path):
    path = tmp_path / "tokens"
    write_tokens(path)
    table = TokenTable.load(None, path)
    ana = Principal("ana", "operator")
    assert table.holds(_digest(ANA), ana) and not table.holds(_digest(BOB), ana) and not table.holds(None, ana)
    assert not table.changed()
    write_tokens(path, ana=ANA_NEW)
    assert table.changed()
    new = table.reread()
    assert not new.holds(_digest(ANA), ana) and new.holds(_digest(ANA_NEW), ana)
    assert new.holds(_digest(BOB), Principal("bob", "operator"))
    sessions = Sessions()
    kept, gone = sessions.create(Principal("bob", "operator"), _digest(BOB)), sessions.create(ana, _digest(ANA))
    assert sessions.revoke(lambda s: new.holds(s.token, s.principal)) == 1
    assert sessions.get(kept.id) is kept and sessions.get(gone.id) is None


def test_a_broken_tokens_file_revokes_its_tokens_until_fixed(tmp_path):
    path = tmp_path / "tokens"
    write_tokens(path)
    table = TokenTable.load("shared-operator-token-99", path)
    path.write_text("operator ana\n")  # half an edit
    broken = table.reread()
    assert broken.lookup(ANA) is None and broken.lookup("shared-operator-token-99") is not None
    write_tokens(path)
    assert broken.changed() and broken.reread().lookup(ANA) == Principal("ana", "operator")


# --- the real server ---
@pytest.mark.slow
def test_a_changed_token_ends_its_console_sessions_at_once(served):
    server, tokens = served
    ana, bob = browser(server.base, ANA), browser(server.base, BOB)
    assert ana.get("/console").status_code == 200
    write_tokens(tokens, ana=ANA_NEW)  # ana's token changes; bob's does not; no restart
    assert ana.get("/console").status_code == 401  # the very next request
    assert bob.get("/console").status_code == 200
    assert httpx2.get(f"{server.base}/console?token={ANA}", timeout=10).status_code == 401
    assert browser(server.base, ANA_NEW).get("/console").status_code == 200
    assert server.proc.poll() is None
    assert "console sessions of removed or changed tokens ended" in server.stderr()


@pytest.mark.slow
def test_a_removed_principal_loses_the_console_and_mcp_at_once(served):
    server, tokens = served
    bob = browser(server.base, BOB)
    assert ping(server.base, BOT) != 401
    write_tokens(tokens, bob=None, bot=BOT_NEW)
    assert bob.get("/console").status_code == 401
    assert ping(server.base, BOT) == 401 and ping(server.base, BOT_NEW) != 401


def _rewrite_keeping_the_stamp(path, text: str) -> None:
    """Rewrite in place with the same size and modification time: only an explicit reload sees it."""
    stat = os.stat(path)
    with open(path, "r+") as out:
        out.write(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size


@pytest.mark.slow
def test_sighup_rereads_the_tokens_file(served):
    server, tokens = served
    ana = browser(server.base, ANA)
    _rewrite_keeping_the_stamp(tokens, tokens.read_text().replace(ANA, ANA_NEW))
    assert ana.get("/console").status_code == 200  # not noticed: same size and time
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while ana.get("/console").status_code == 200:
        assert time.monotonic() < deadline, "SIGHUP did not re-read the tokens file"
        time.sleep(0.2)
    assert ana.get("/console").status_code == 401 and server.proc.poll() is None


@pytest.mark.slow
def test_the_reload_command_rereads_the_tokens_file(served, fake_policies):
    server, tokens = served
    ana = browser(server.base, ANA)
    _rewrite_keeping_the_stamp(tokens, tokens.read_text().replace(ANA, ANA_NEW))
    done = subprocess.run([CLI, "--policies", str(fake_policies), "reload", "--db", str(server.db)],
                          env=server_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while ana.get("/console").status_code == 200:
        assert time.monotonic() < deadline, "the reload command did not re-read the tokens file"
        time.sleep(0.3)
    assert browser(server.base, ANA_NEW).get("/console").status_code == 200
