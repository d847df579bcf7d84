"""The operator web console at /console, through the real HTTP app (MCP server + console routes
behind the bearer-token middleware) on a real SQLite file with a controlled clock. The fake
embedder keeps these fast. The last test runs the real `escalation-matrix serve` process (real model)
and answers an escalation in headless Chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from starlette.testclient import TestClient

from escalation_matrix import console
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import BearerAuth, build_http_app, build_server
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

TOKEN = "console-token-4b2e"
BASE = "http://127.0.0.1:8765"
INJECTION = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock) -> ConversationGuard:
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


@pytest.fixture
def ops(guard) -> Operations:
    return Operations(guard.store, guard.policy)


@pytest.fixture
def app(guard):
    return build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))


@pytest.fixture
def client(app):
    """A browser that opened /console?token=... once: it holds the session and CSRF cookies."""
    with TestClient(app, base_url=BASE) as c:
        assert c.get(f"/console?token={TOKEN}").status_code == 200
        yield c


def csrf(client: TestClient) -> str:
    """The CSRF token the console page put in its forms (bound to this browser's session)."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console").text)
    assert found, "no CSRF field on the console page"
    return found.group(1)


def post(client: TestClient, esc_id: str, action: str, **fields: str):
    return client.post(f"/console/escalations/{esc_id}/{action}", data={"csrf": csrf(client), **fields})


def flash(page: str) -> str:
    found = re.search(r'<p class="flash flash--(\w+)" role="status">(.*?)</p>', page, re.S)
    assert found, "no flash on the page"
    return f"{found.group(1)}: {unescape(found.group(2))}"


# --- access ---
@pytest.mark.parametrize("path, method, headers", [
    ("/console", "GET", {}),
    ("/console?token=wrong", "GET", {}),
    ("/console", "GET", {"Authorization": "Bearer wrong"}),
    ("/console", "GET", {"Cookie": f"{BearerAuth.COOKIE}={TOKEN}"}),  # the raw token is not the session
    (f"/console/escalations/ESC-2026-001/answer?token={TOKEN}", "POST", {}),  # ?token= only opens a page
    ("/console/operator", "POST", {}),
])
def test_console_without_the_token_is_401(app, path, method, headers):
    with TestClient(app, base_url=BASE) as c:
        response = c.request(method, path, headers=headers, follow_redirects=False)
    assert response.status_code == 401
    assert "Open escalations" not in response.text


def test_the_token_in_the_address_sets_an_httponly_cookie_and_leaves_the_address(app):
    with TestClient(app, base_url=BASE) as c:
        response = c.get(f"/console?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/console"
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{BearerAuth.COOKIE}=") and TOKEN not in set_cookie
        assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower()
        assert "path=/console" in set_cookie.lower()
        assert c.get("/console").status_code == 200  # the cookie alone is enough from now on


def test_the_bearer_header_opens_the_console_too(app):
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/console", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_console_cookie_does_not_open_the_mcp_endpoint(client):
    response = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                           headers={"Cookie": f"{BearerAuth.COOKIE}={client.cookies[BearerAuth.COOKIE]}"})
    assert response.status_code == 401


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(client, ops):
    esc_id = ops.create("Approve the refund")["id"]
    for fields in ({}, {"csrf": "forged"}):
        response = client.post(f"/console/escalations/{esc_id}/answer", data={"answer": "yes", **fields})
        assert response.status_code == 403
    assert ops.store.escalation(esc_id)["status"] == "open"


# --- the page ---
def test_open_escalations_are_grouped_by_severity_with_the_time_left(client, guard, ops, clock):
    manual = ops.create("Refund over the limit", level=1, severity="L2", type="decision")["id"]
    agent = guard.clarify("chat-1", "Set up the new server", "Which region should it run in?",
                          task_id="server", options=["eu-west-1", "us-east-1"]).escalation_id
    done = ops.create("Already handled")["id"]
    ops.close(done, "handled by phone")
    clock.moment += timedelta(hours=1)
    page = client.get("/console").text
    sections = re.findall(r'<section id="(L\d)">', page)
    assert sections == ["L2", "L1"]
    l2, l1 = page.split('<section id="L1">')
    assert manual in l2 and agent in l1 and done not in page
    assert "23 h left" in l2 and "level 1 (operational) target 24 h" in l2  # the routing level's target
    assert "overdue by 58 min" in l1 and "L1 target 2 min" in l1  # an agent escalation: its severity's
    assert "2 open · 1 overdue" in page


def test_each_escalation_shows_its_card_from_the_phrase_template(client, guard, policy):
    from escalation_matrix.render import render

    result = guard.clarify("chat-1", "Set up the new server", "Which region should it run in?",
                           task_id="server", options=["eu-west-1", "us-east-1"])
    page = client.get("/console").text
    card_html = render(guard.store.escalation(result.escalation_id), "html", policy)
    assert card_html.strip() in page
    assert "CLARIFICATION ESCALATION REQUIRED" in page and "Option 2: us-east-1" in page


def test_user_text_is_shown_as_text_not_markup(client, guard, ops):
    esc_id = ops.create(INJECTION, details=INJECTION, assigned_to=INJECTION)["id"]
    guard.clarify("chat-x", INJECTION, f"Which one? {INJECTION}", options=[INJECTION])
    page = client.get("/console").text
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(" in page
    response = post(client, esc_id, "note", note=INJECTION)
    assert "<script>" not in response.text
    post(client, esc_id, "assign", assignee=INJECTION)
    assert "<img" not in client.get("/console").text


def test_an_empty_console_says_nothing_is_waiting(client):
    assert "No open escalations" in client.get("/console").text


# --- actions (Post/Redirect/Get, flash) ---
def test_answering_redirects_back_with_a_flash_and_records_the_operator(client, ops):
    esc_id = ops.create("Approve the refund")["id"]
    client.post("/console/operator", data={"csrf": csrf(client), "operator": "ana"})
    response = post(client, esc_id, "answer", answer="Approve it up to 500 EUR")
    assert response.history[0].status_code == 303 and response.url.path == "/console"
    assert flash(response.text) == f"ok: {esc_id} answered by ana; the agent's next call proceeds with the answer."
    record = ops.store.escalation(esc_id)
    assert (record["status"], record["answer"], record["answered_by"]) == ("answered", "Approve it up to 500 EUR", "ana")
    assert esc_id not in client.get("/console").text.split("</header>")[1]  # no longer open; flash shown once


def test_an_option_button_answers_with_that_option(client, guard):
    result = guard.clarify("chat-1", "Set up the new server", "Which region should it run in?",
                           task_id="server", options=["eu-west-1", "us-east-1"])
    post(client, result.escalation_id, "answer", choice="us-east-1", answer="")
    assert guard.store.escalation(result.escalation_id)["answer"] == "us-east-1"


def test_an_answer_from_the_console_lets_the_agent_proceed(client, guard):
    asked = guard.clarify("chat-1", "Set up the new server", "Which region should it run in?", task_id="server")
    post(client, asked.escalation_id, "answer", answer="eu-west-1")
    again = guard.clarify("chat-1", "Set up the new server", "Which region should it run in?", task_id="server")
    assert again.action.value == "proceed" and again.answer == "eu-west-1"


def test_assign_raise_note_and_close(client, ops):
    esc_id = ops.create("Pipeline keeps failing on item 42", level=1)["id"]
    assert flash(post(client, esc_id, "assign", assignee="ed@example.com").text) == f"ok: {esc_id} assigned to ed@example.com."
    assert flash(post(client, esc_id, "raise", level="2", reason="needs a code fix").text) == \
        f"ok: {esc_id} raised to level 2, assigned to engineering-team."
    assert flash(post(client, esc_id, "note", note="Stack trace attached to the ticket").text) == f"ok: Note added to {esc_id}."
    response = post(client, esc_id, "close", resolution="Fixed the parser", preventive_measures="Schema check",
                    lessons_learned="Validate inputs early")
    assert flash(response.text) == f"ok: {esc_id} closed by operator."
    shown = ops.show(esc_id)
    assert (shown["status"], shown["level"], shown["assignee"]) == ("closed", 2, "engineering-team")
    assert (shown["resolution"], shown["preventive_measures"], shown["lessons_learned"]) == \
        ("Fixed the parser", "Schema check", "Validate inputs early")
    assert [n["text"] for n in shown["notes"]] == ["Stack trace attached to the ticket"]
    actions = [e["action"] for e in shown["audit"]]
    assert {"escalation_assigned", "escalation_raised", "note_added", "escalation_closed"} <= set(actions)


def test_raise_offers_only_higher_levels(client, ops):
    esc_id = ops.create("Needs product input", level=2)["id"]
    page = client.get("/console").text
    form = page.split(f'/escalations/{esc_id}/raise"')[1].split("</form>")[0]
    assert re.findall(r'<option value="(\d)"', form) == ["3"]


@pytest.mark.parametrize("action, fields, error", [
    ("answer", {"answer": "  "}, "the answer is empty"),
    ("raise", {"level": "1", "reason": "again"}, "is already at level 1"),
    ("raise", {"level": "two", "reason": "x"}, "the new level must be a number"),
    ("close", {"resolution": ""}, "the resolution is empty"),
    ("frobnicate", {}, "unknown action 'frobnicate'"),
])
def test_a_refused_action_flashes_what_to_fix(client, ops, action, fields, error):
    esc_id = ops.create("Approve the refund")["id"]
    response = post(client, esc_id, action, **fields)
    assert response.url.path == "/console"
    assert flash(response.text).startswith("error: ") and error in flash(response.text)
    assert ops.store.escalation(esc_id)["status"] == "open"


def test_answering_twice_or_an_unknown_id_flashes_an_error(client, ops):
    esc_id = ops.create("Approve the refund")["id"]
    post(client, esc_id, "answer", answer="yes")
    assert "it is answered" in flash(post(client, esc_id, "answer", answer="no").text)
    assert flash(post(client, "ESC-2026-999", "answer", answer="yes").text).startswith("error: ")
    assert ops.store.escalation(esc_id)["answer"] == "yes"


def test_without_a_configured_token_the_console_is_open(guard):
    app = build_http_app(build_server(guard=guard), token=None, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/console").status_code == 200


@pytest.mark.slow
def test_the_wheel_ships_the_console_template(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("escalation_matrix-*.whl")
    assert "escalation_matrix/console_templates/console.html.j2" in zipfile.ZipFile(wheel).namelist()


# --- end to end: the real server process and headless Chromium ---
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def served(tmp_path):
    """`escalation-matrix serve --transport http` with a token, on its own state file."""
    from servers import serve_http, server_env, stop

    db = tmp_path / "state.db"
    server = serve_http(["serve", "--transport", "http", "--db", str(db)], server_env(ESCALATION_MATRIX_TOKEN=TOKEN),
                        tmp_path / "server.log", db=db, probe="/console")
    try:
        yield server.base, db
    finally:
        stop(server.proc)


async def mcp_clarify(base: str, question: str) -> dict:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    async with Client(streamable_http_client(f"{base}/mcp", http_client=auth)) as client:
        result = await client.call_tool("clarify", {"conversation_id": "browser-1", "task_id": "deploy",
                                                    "request": "Deploy the new build", "question": question})
    assert not result.is_error, result.content
    return result.structured_content


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(apt-get install chromium); the browser test needs it")
async def test_an_operator_answers_in_headless_chromium_and_the_agent_proceeds(served, tmp_path):
    from playwright.async_api import async_playwright

    base, db = served
    question = "Which region should the build go to?"
    asked = await mcp_clarify(base, question)
    esc_id = asked["escalation_id"]
    assert asked["action"] == "escalate" and esc_id
    before, after = tmp_path / "console-before.png", tmp_path / "console-after.png"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.goto(f"{base}/console?token={TOKEN}")
            assert page.url == f"{base}/console"  # the token left the address bar
            await page.fill("#operator", "ana")
            await page.click("header button")
            await page.wait_for_selector(".flash--ok")
            card = page.locator(f"article[data-escalation-id='{esc_id}']")
            # the card shows the escalation's own message (its type is the classifier's call)
            assert f"{asked['type'].upper()} ESCALATION REQUIRED" in await card.inner_text()
            await page.screenshot(path=str(before), full_page=True)
            await card.locator("textarea[name=answer]").fill("eu-west-1, behind the feature flag")
            await card.locator("form.action-answer button:not(.choice)").click()
            await page.wait_for_selector(f".flash--ok:has-text('{esc_id} answered by ana')")
            await page.screenshot(path=str(after), full_page=True)
            assert await page.locator(f"article[data-escalation-id='{esc_id}']").count() == 0
        finally:
            await browser.close()
    record = Store(db).escalation(esc_id)
    assert (record["status"], record["answer"], record["answered_by"]) == \
        ("answered", "eu-west-1, behind the feature flag", "ana")
    again = await mcp_clarify(base, question)  # the agent's next call proceeds with the answer
    assert again["action"] == "proceed" and again["answer"] == "eu-west-1, behind the feature flag"
    for shot in (before, after):
        assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



@pytest.fixture
def served_in_process(guard):
    """The same HTTP app (MCP, console, token middleware) served by uvicorn on a loopback port in
    this process, over the fake embedder: a browser test of the console without loading the model."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(apt-get install chromium); the browser test needs it")
async def test_an_operator_suspends_and_reinstates_an_actor_in_headless_chromium(served_in_process, guard, ops,
                                                                                 tmp_path):
    from playwright.async_api import async_playwright

    from escalation_matrix.ops.oversight import Oversight

    base = served_in_process
    oversight = Oversight(guard.store, guard.policy)
    for choice in ("Approve", "Reject", "Reject"):
        oversight.record("clark", "Approve", choice)
    desk = ops.create("Roof grant file", assigned_to="clark")["id"]
    shot = tmp_path / "actors-suspended.png"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.goto(f"{base}/console?token={TOKEN}")
            await page.fill("#operator", "ana")
            await page.click("header button")
            await page.wait_for_selector(".flash--ok")
            await page.click("nav.views a:has-text('Actors')")
            row = page.locator("tr[data-actor='clark']")
            assert "33.3" in await row.locator(".score").inner_text()
            await row.locator("form.action-suspend input[name=reason]").fill("audit finding")
            await row.locator("form.action-suspend button").click()
            await page.wait_for_selector(".flash--ok:has-text('clark suspended by ana')")
            assert "replaced by backup-agent" in await page.locator("tr[data-actor='clark'] .status").inner_text()
            await page.screenshot(path=str(shot), full_page=True)
            await page.locator("tr[data-actor='clark'] form.action-reinstate button").click()
            await page.wait_for_selector(".flash--ok:has-text('clark reinstated by ana')")
            assert (await page.locator("tr[data-actor='clark'] .status").inner_text()).strip() == "active"
        finally:
            await browser.close()
    assert guard.store.escalation(desk)["assignee"] == "backup-agent"
    actions = [(e["action"], e["actor"]) for e in guard.store.audit_entries()
               if e["action"] in ("actor_suspended", "actor_reinstated")]
    assert actions == [("actor_suspended", "ana"), ("actor_reinstated", "ana")]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_database_that_cannot_be_reached_gives_503_with_retry_after(guard, monkeypatch):
    """PostgreSQL down or restarting: the operator's page says so and when to retry, not a bare 500."""
    from escalation_matrix.errors import UnavailableError
    from escalation_matrix.store import Store

    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        assert c.get(f"/console?token={TOKEN}").status_code == 200

        def down(self, *args, **kwargs):
            raise UnavailableError("the state database (PostgreSQL) cannot be reached right now; retry in a few seconds")

        monkeypatch.setattr(Store, "escalations", down)
        page = c.get("/console")
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert "cannot be reached right now; retry" in page.text
