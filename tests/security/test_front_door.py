"""The HTTP front door of the real server process: console CSRF bound to the session, Origin and
Host checks on every route, sessions that end, loopback-only without a token, principals with
roles, the Bearer scheme in any case."""

from __future__ import annotations

import re
import subprocess

import httpx2
import pytest
from serving import OPERATOR_TOKEN, server_env, start, stop

from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

pytestmark = pytest.mark.slow

AGENT_TOKEN = "agent-token-b6e1f0c2a9d4"
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def browser(served, token: str = OPERATOR_TOKEN) -> httpx2.Client:
    """A browser that opened /console?token=... once."""
    client = httpx2.Client(base_url=served.base, timeout=10)
    assert client.get(f"/console?token={token}", follow_redirects=True).status_code == 200
    return client


def page_csrf(client: httpx2.Client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/console").text).group(1)


def open_escalation(served) -> str:
    from escalation_matrix.loader import load_policy

    return Operations(Store(served.db), load_policy()).create("Approve the refund")["id"]


def record(served, esc_id: str) -> dict:
    return Store(served.db).escalation(esc_id)


# --- point 1: CSRF and the operator's identity ---
def test_a_planted_csrf_cookie_does_not_forge_an_answer(serve):
    served = serve()
    esc_id = open_escalation(served)
    client = browser(served)
    # a page on the same host (another port) plants a cookie and posts a form that matches it
    client.cookies.set("escalation_matrix_csrf", "planted", path="/")
    response = client.post(f"/console/escalations/{esc_id}/answer", data={"csrf": "planted", "answer": "attacker"})
    assert response.status_code == 403
    assert record(served, esc_id)["status"] == "open"


def test_a_cross_origin_post_is_refused_even_with_the_right_token(serve):
    served = serve()
    esc_id = open_escalation(served)
    client = browser(served)
    csrf = page_csrf(client)
    for headers in ({"Origin": "http://127.0.0.1:9999"}, {"Origin": "null"},
                    {"Referer": "http://127.0.0.1:9999/attack.html"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(f"/console/escalations/{esc_id}/answer", headers=headers,
                               data={"csrf": csrf, "answer": "attacker"})
        assert response.status_code == 403, headers
        assert "cross-origin request refused" in response.text
    assert record(served, esc_id)["status"] == "open"
    same = client.post(f"/console/escalations/{esc_id}/answer", headers={"Origin": served.base},
                       data={"csrf": csrf, "answer": "approved"})
    assert same.status_code == 303 and record(served, esc_id)["answer"] == "approved"


def test_a_planted_operator_cookie_does_not_sign_the_answer(serve):
    served = serve()
    esc_id = open_escalation(served)
    client = browser(served)
    client.cookies.set("escalation_matrix_operator", "mallory", path="/console")
    client.post(f"/console/escalations/{esc_id}/answer", data={"csrf": page_csrf(client), "answer": "ok"})
    assert record(served, esc_id)["answered_by"] == "operator"


def test_a_personal_token_signs_with_its_name_and_the_name_cannot_be_changed(serve, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"operator ana {'a' * 24}\nagent bot-1 {AGENT_TOKEN}\n")
    served = serve(token=None, extra=["--tokens", str(tokens)])
    esc_id = open_escalation(served)
    client = browser(served, "a" * 24)
    csrf = page_csrf(client)
    renamed = client.post("/console/operator", data={"csrf": csrf, "operator": "mallory"}, follow_redirects=True)
    assert "you are signed in as ana" in renamed.text
    client.post(f"/console/escalations/{esc_id}/answer", data={"csrf": csrf, "answer": "ok"})
    assert record(served, esc_id)["answered_by"] == "ana"


def test_an_agent_token_does_not_open_the_console(serve, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"agent bot-1 {AGENT_TOKEN}\n")
    served = serve(token=None, extra=["--tokens", str(tokens)])
    response = httpx2.get(f"{served.base}/console", headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    assert response.status_code == 403
    opened = httpx2.get(f"{served.base}/console?token={AGENT_TOKEN}", follow_redirects=True)
    assert opened.status_code == 403 and "Open escalations" not in opened.text


# --- point 11: sessions end ---
def test_a_session_does_not_survive_a_restart(serve, tmp_path):
    served = serve()
    client = browser(served)
    cookie = client.cookies["escalation_matrix_session"]
    served.proc.terminate()
    served.proc.wait(timeout=15)
    again = serve()  # same token, new process
    response = httpx2.get(f"{again.base}/console", cookies={"escalation_matrix_session": cookie})
    assert response.status_code == 401 and "expired" in response.text


def test_logout_ends_the_session(serve):
    served = serve()
    client = browser(served)
    cookie = client.cookies["escalation_matrix_session"]
    assert client.post("/console/logout", data={"csrf": page_csrf(client)}).status_code == 200
    response = httpx2.get(f"{served.base}/console", cookies={"escalation_matrix_session": cookie})
    assert response.status_code == 401


def test_the_session_cookie_is_a_random_id_not_derived_from_the_token(serve):
    served = serve()
    first, second = browser(served), browser(served)
    a, b = first.cookies["escalation_matrix_session"], second.cookies["escalation_matrix_session"]
    assert a != b and OPERATOR_TOKEN not in a and len(a) >= 32


# --- the flash line lives in the session, not in a cookie a neighbouring page could plant ---
def flash_text(page: str) -> str | None:
    found = re.search(r'<p class="flash flash--(\w+)" role="status">(.*?)</p>', page, re.S)
    return f"{found.group(1)}: {found.group(2)}" if found else None


def test_a_planted_flash_cookie_is_not_shown(serve):
    served = serve()
    client = browser(served)
    for path in ("/console", "/"):  # a page on another port of this host can set both
        client.cookies.set("escalation_matrix_flash", "error%3APaste%20your%20token%20at%20evil.example",
                           domain="127.0.0.1", path=path)
    page = client.get("/console")
    assert page.status_code == 200 and "evil.example" not in page.text and flash_text(page.text) is None


def test_the_flash_goes_to_the_session_that_acted_and_is_shown_once(serve):
    served = serve()
    esc_id = open_escalation(served)
    acting, other = browser(served), browser(served)
    response = acting.post(f"/console/escalations/{esc_id}/note", data={"csrf": page_csrf(acting), "note": "Called the customer"})
    assert response.status_code == 303 and "escalation_matrix_flash" not in response.headers.get("set-cookie", "")
    assert flash_text(acting.get("/console").text) == f"ok: Note added to {esc_id}."
    assert flash_text(acting.get("/console").text) is None  # once
    assert flash_text(other.get("/console").text) is None  # only the session that acted


# --- point 8 at the console: every form field is capped ---
def test_a_console_field_over_the_cap_is_refused_with_what_to_fix(serve):
    served = serve()
    esc_id = open_escalation(served)
    client = browser(served)
    response = client.post(f"/console/escalations/{esc_id}/note", data={"csrf": page_csrf(client), "note": "x" * 8001},
                           follow_redirects=True)
    assert "the note field has 8,001 characters; the limit is 8,000" in response.text
    huge = client.post(f"/console/escalations/{esc_id}/note", data={"csrf": page_csrf(client), "note": "x" * 200_000})
    assert huge.status_code == 413
    assert Store(served.db).count("notes") == 0 and served.proc.poll() is None
    ok = client.post(f"/console/escalations/{esc_id}/note", data={"csrf": page_csrf(client), "note": "x" * 8000})
    assert ok.status_code == 303 and Store(served.db).count("notes") == 1


# --- point 2: no token means this machine only, and Host checks everywhere ---
def test_without_a_token_the_server_refuses_to_listen_beyond_loopback(tmp_path, fake_policies):
    proc = start(["--policies", str(fake_policies), "serve", "--transport", "http", "--host", "0.0.0.0",
                  "--port", "0", "--db", str(tmp_path / "s.db")], server_env(), tmp_path / "err.log")
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:  # it started listening: the check is missing
        code = None
    finally:
        stop(proc)
    assert code == 1
    err = (tmp_path / "err.log").read_text()
    assert "refusing to listen on 0.0.0.0 without a token" in err and "--insecure" in err


@pytest.mark.parametrize("token", [None, OPERATOR_TOKEN])
def test_a_foreign_host_is_refused_on_every_route(serve, token):
    served = serve(token=token)
    esc_id = open_escalation(served)
    headers = {"Host": f"rebind.example:{served.port}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    assert httpx2.get(f"{served.base}/console", headers=headers).status_code == 421
    assert httpx2.post(f"{served.base}/console/escalations/{esc_id}/answer", headers=headers,
                       data={"answer": "rebound"}).status_code == 421
    assert httpx2.post(f"{served.base}/mcp", headers={**headers, **MCP_HEADERS}, json=PING).status_code == 421
    assert record(served, esc_id)["status"] == "open"


def test_without_a_token_a_rebinding_page_cannot_answer(serve):
    served = serve(token=None)
    esc_id = open_escalation(served)
    client = httpx2.Client(base_url=served.base, timeout=10)
    csrf = page_csrf(client)
    rebound = client.post(f"/console/escalations/{esc_id}/answer", data={"csrf": csrf, "answer": "x"},
                          headers={"Host": f"attacker.example:{served.port}"})
    assert rebound.status_code == 421
    ok = client.post(f"/console/escalations/{esc_id}/answer", data={"csrf": csrf, "answer": "fine"})
    assert ok.status_code == 303 and record(served, esc_id)["answered_by"] == "operator"


# --- point 14 ---
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(serve, scheme):
    served = serve()
    response = httpx2.post(f"{served.base}/mcp", headers={"Authorization": f"{scheme} {OPERATOR_TOKEN}", **MCP_HEADERS},
                           json=PING)
    assert response.status_code != 401


def test_a_wrong_token_in_any_case_is_401(serve):
    served = serve()
    for header in ("bearer wrong", "Basic " + OPERATOR_TOKEN, OPERATOR_TOKEN):
        assert httpx2.post(f"{served.base}/mcp", headers={"Authorization": header, **MCP_HEADERS},
                           json=PING).status_code == 401


def test_the_insecure_flag_is_in_the_help():
    from click.testing import CliRunner

    from escalation_matrix.cli import main

    out = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--insecure" in out and "--tokens" in out and "--allowed-host" in out
