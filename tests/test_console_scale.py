"""The console at scale: filters, search, pages, the history view, one escalation's history page,
the L4 heading after an unlock, and the dashboard's SVG charts. Through the real HTTP app on a
real SQLite file (fake embedder: no model needed for viewing); the last test drives the real
``serve`` process in headless Chromium and saves a screenshot of every page (under the test's
temporary folder and, for a person to look at, out/screenshots/)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from escalation_matrix import console
from escalation_matrix.console_views import PAGE_SIZE
from escalation_matrix.guard import ConversationGuard, unlock_task
from escalation_matrix.mcp_app import build_http_app, build_server
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scale-token-77"
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock) -> ConversationGuard:
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


@pytest.fixture
def ops(guard) -> Operations:
    return Operations(guard.store, guard.policy)


@pytest.fixture
def client(guard):
    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE) as c:
        assert c.get(f"/console?token={TOKEN}").status_code == 200
        yield c


def ids(page: str) -> list[str]:
    return re.findall(r'<article id="([^"]+)"', page)


def history_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-escalation-id="([^"]+)"', page)


def many(ops: Operations, n: int, **fields) -> list[str]:
    return [ops.create(f"{fields.get('type', 'decision')} question {i}", **fields)["id"] for i in range(n)]


# --- pages ---
def test_the_open_queue_is_paged_and_every_escalation_is_on_exactly_one_page(client, ops):
    created = set(many(ops, 60, severity="L2"))
    pages = (60 + PAGE_SIZE - 1) // PAGE_SIZE
    seen: list[str] = []
    for n in range(1, pages + 1):
        page = client.get(f"/console?page={n}").text
        assert f"page {n} of {pages}" in page
        seen += ids(page)
    assert len(seen) == len(set(seen)) == 60 and set(seen) == created
    first = client.get("/console").text
    assert len(ids(first)) == PAGE_SIZE and '<a rel="next" href="/console?page=2">' in first
    assert "1–25 of 60 open" in unescape(first)


def test_a_page_past_the_end_shows_the_last_page_and_a_bad_page_number_says_so(client, ops):
    many(ops, 30)
    assert "page 2 of 2" in client.get("/console?page=99").text
    bad = client.get("/console?page=minus-one")
    assert bad.status_code == 200 and "is not a page number" in unescape(bad.text)


def test_a_page_of_two_hundred_open_escalations_renders_only_one_page_of_cards(client, ops):
    many(ops, 200)
    page = client.get("/console").text
    assert len(ids(page)) == PAGE_SIZE and page.count('class="escalation"') <= PAGE_SIZE
    assert len(page.encode()) < 250_000  # one page of 25 cards, not 200


# --- filters and search ---
@pytest.mark.parametrize("query, expected", [
    ("severity=L1", {"l1"}),
    ("type=scope", {"scope"}),
    ("assignee=night-shift", {"night"}),
    ("status=raised", {"raised"}),
    ("q=brand+Zeta", {"zeta"}),
    ("q=zeta", {"zeta"}),  # case does not matter
    ("severity=L1&type=scope", set()),
])
def test_filters_and_search_narrow_the_queue(client, ops, clock, query, expected):
    made = {
        "l1": ops.create("quick one", severity="L1", type="clarification")["id"],
        "scope": ops.create("out of scope", severity="L2", type="scope")["id"],
        "night": ops.create("for the night shift", severity="L2", assigned_to="night-shift")["id"],
        "zeta": ops.create("Which brand is Zeta Foods?", severity="L2", details="brand lookup")["id"],
        "raised": ops.create("raised one", severity="L2")["id"],
    }
    ops.raise_level(made["raised"], 2, "needs engineering", by="ed")
    page = client.get(f"/console?{query}").text
    assert set(ids(page)) == {made[k] for k in expected}
    assert "matching" in page
    if not expected:
        assert "No open escalation matches these filters." in page


def test_overdue_only_shows_escalations_past_their_target(client, ops, clock):
    old = ops.create("waiting since yesterday", severity="L2")["id"]
    clock.moment += timedelta(days=2)
    fresh = ops.create("just arrived", severity="L2")["id"]
    assert set(ids(client.get("/console?overdue=1").text)) == {old}
    assert set(ids(client.get("/console").text)) == {old, fresh}


def test_filters_are_kept_in_the_page_links_and_the_form(client, ops):
    many(ops, 30, severity="L1")
    many(ops, 5, severity="L3")
    page = client.get("/console?severity=L1").text
    assert '<a rel="next" href="/console?severity=L1&amp;page=2">' in page
    assert '<option value="L1" selected>' in page
    second = client.get("/console?severity=L1&page=2").text
    assert len(ids(second)) == 5 and "L3" not in "".join(re.findall(r'<section id="(L\d)">', second))


def test_search_text_is_data_not_sql_or_markup(client, ops):
    ops.create("100% sure_thing", severity="L2")
    ops.create("a sure thing", severity="L2")
    assert len(ids(client.get("/console?q=100%25").text)) == 1
    assert len(ids(client.get("/console?q=%25").text)) == 1  # a literal %, not a wildcard
    assert len(ids(client.get("/console?q=sure_thing").text)) == 1  # a literal _, not any character
    page = client.get("/console?q=%3Cscript%3Ealert(1)%3C/script%3E").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_unknown_filter_values_are_named_and_ignored(client, ops):
    ops.create("one", severity="L2")
    page = unescape(client.get("/console?severity=L9&type=weather").text)
    assert "unknown severity 'L9'" in page and "unknown type 'weather'" in page
    assert len(ids(page)) == 1


# --- history and the per-escalation page ---
def test_the_history_view_lists_finished_escalations_newest_first_with_filters(client, ops, clock):
    a = ops.create("first", severity="L1", type="clarification")["id"]
    b = ops.create("second", severity="L2")["id"]
    c = ops.create("still open", severity="L2")["id"]
    clock.moment += timedelta(minutes=5)
    ops.answer(a, "go", by="ed")
    clock.moment += timedelta(minutes=5)
    ops.close(b, "done", by="ana")
    page = client.get("/console/history").text
    assert history_ids(page) == [b, a] and c not in page
    assert history_ids(client.get("/console/history?status=closed").text) == [b]
    assert history_ids(client.get("/console/history?q=first").text) == [a]
    assert c in ids(client.get("/console").text) and a not in ids(client.get("/console").text)


def test_the_history_view_is_paged(client, ops):
    for esc in many(ops, 30):
        ops.close(esc, "done", by="ed")
    first, second = client.get("/console/history").text, client.get("/console/history?page=2").text
    assert len(history_ids(first)) == PAGE_SIZE and len(history_ids(second)) == 5
    assert not set(history_ids(first)) & set(history_ids(second))


def test_an_escalations_page_shows_its_notes_stages_notifications_and_audit(client, ops, clock):
    from escalation_matrix.ops.failsafe import sweep

    esc = ops.create("Which supplier?", severity="L1", type="clarification", source="agent")["id"]  # fail-safe stages
    ops.note(esc, "Checked the supplier list: two match.", by="ana")
    sweep(ops.store, ops.policy, clock.at(minutes=16))
    ops.close(esc, "Supplier B", lessons_learned="keep the list current", by="ana")
    page = unescape(client.get(f"/console/escalations/{esc}").text)
    assert page.count(esc) >= 2
    assert "Checked the supplier list: two match." in page
    assert "reminder" in page and "raise to l2" in page
    for action in ("escalation created", "note added", "failsafe reminder", "escalation closed"):
        assert action in page, action
    assert "keep the list current" in page
    assert client.get(f"/console/escalations/{esc}").headers["content-security-policy"].startswith("default-src 'none'")


def test_an_unknown_escalation_page_is_a_404_with_a_way_back(client):
    response = client.get("/console/escalations/ESC-2026-999")
    assert response.status_code == 404 and 'href="/console"' in response.text


def test_the_new_pages_need_the_token_too(guard):
    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE) as c:
        for path in ("/console/history", "/console/dashboard", "/console/escalations/ESC-2026-001"):
            assert c.get(path).status_code == 401, path


# --- the L4 heading ---
def test_the_l4_heading_says_task_locked_only_while_a_task_is_locked(client, ops, guard):
    esc = ops.create("dangerous request", severity="L4", type="safety", conversation_id="c1", task_id="t1")["id"]
    page = client.get("/console").text
    assert "stop: task locked" in page and "task locked</span>" in page
    unlock_task(guard.store, "c1", "t1", by="reviewer", reason="reviewed")
    page = client.get("/console").text
    assert esc in ids(page)  # still open: a person has not closed it yet
    assert "stop: task locked" not in page and console.L4_UNLOCKED in page
    assert "task unlocked</span>" in page


# --- dashboard ---
def test_the_dashboard_draws_the_rate_against_the_target_and_response_times_by_level(client, ops, guard, clock):
    store = guard.store
    with store.transaction() as conn:
        for i in range(20):
            store.record_decision(conn, "classify", "none" if i % 5 else "decision", "proceed" if i % 5 else "escalate",
                                  severity=None if i % 5 else "L2")
    esc = ops.create("how fast?", severity="L2", level=2)["id"]
    clock.moment += timedelta(minutes=10)
    ops.answer(esc, "fast", by="ed")
    page = client.get("/console/dashboard?period=daily").text
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) == 3 and "<script" not in page
    rate = svgs[0]
    assert 'class="target' in rate and rate.count('class="point"') == 1 and "20.00% of 20 decisions" in rate
    assert rate.count('class="gap"') == 13  # 13 of the 14 days have no decisions: gaps, not 0 %
    response = unescape(svgs[2])
    assert "level: engineering" in response and "median 10 min / target 2 d" in response
    assert "L2" in response and "median 10 min / target 15 min" in response
    assert "20.0%" in unescape(page) and "ALERT" in page


def test_the_dashboard_shows_decision_quality(client, ops, guard, clock):
    """Outcomes and structured answers reach the operator's dashboard, not only the report command."""
    from escalation_matrix.answers import respond_action

    first = ops.create("deploy on friday?", severity="L2", level=2)["id"]
    second = ops.create("drop the old table?", severity="L2", level=2)["id"]
    clock.moment += timedelta(minutes=10)
    ops.answer(first, "yes", by="ed", necessary=False)
    respond_action(guard.store, second, "reject", "ed", necessary=True, note="keep it")
    page = unescape(client.get("/console/dashboard?period=daily").text)
    panel = page.split('id="decision-quality"')[1].split("</section>")[0]
    assert "Answered 2" in panel and "response time median 10 min" in panel
    assert "structured answers reject 1" in panel
    assert "Marked necessary 1, unnecessary 1, missed 0" in panel and "false positives 50.0%" in panel


def test_the_dashboard_names_a_bad_period_and_still_shows(client):
    page = unescape(client.get("/console/dashboard?period=hourly&date=tomorrow").text)
    assert "unknown period 'hourly'" in page and "is not YYYY-MM-DD" in page and "<svg" in page


# --- headless Chromium against the real server ---
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def served_filled(tmp_path, data_copy):
    """`serve --transport http` (fake embedder) on a state file with 400 escalations, 60 open."""
    import subprocess
    import sys

    from servers import serve_http, server_env, stop

    classifier = data_copy / "policies" / "classifier.yaml"
    classifier.write_text(classifier.read_text().replace("model: bundled", "model: fake"))
    db = tmp_path / "filled.db"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fill_db.py"), str(db), "--escalations", "400",
                    "--days", "14", "--open", "60"], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "server")})
    server = serve_http(["--policies", str(data_copy / "policies"), "serve", "--transport", "http", "--db", str(db)],
                        server_env(ESCALATION_MATRIX_TOKEN=TOKEN), tmp_path / "server.log", db=db, probe="/console",
                        timeout=120)
    try:
        yield server.base
    finally:
        stop(server.proc)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM} "
                    "(apt-get install chromium); the browser test needs it")
async def test_an_operator_filters_pages_and_reads_history_in_headless_chromium(served_filled, tmp_path):
    from playwright.async_api import async_playwright

    base = served_filled
    shots = tmp_path / "screenshots"
    shots.mkdir()

    async def shot(page, name: str) -> None:
        await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{base}/console?token={TOKEN}")
            assert await page.locator("article").count() == PAGE_SIZE
            assert "1–25 of 60 open" in await page.locator(".results").first.inner_text()
            await shot(page, "01-open-queue")

            # the server's sweeper has caught up on the old history: most are L3 now; filter by type
            await page.select_option("select[name=type]", "decision")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url(re.compile(r"type=decision"))
            titles = await page.locator("article .escalation__title").all_inner_texts()
            assert titles and all("DECISION" in t.upper() for t in titles), titles
            shown = await page.locator(".results").first.inner_text()
            assert "of 60" not in shown and "matching" in shown
            await shot(page, "02-filtered-decision")

            await page.goto(f"{base}/console")
            await page.click("a[rel=next]")
            await page.wait_for_url(re.compile(r"page=2"))
            assert "26–50 of 60" in await page.locator(".results").first.inner_text()
            await shot(page, "03-page-2")

            await page.click("nav.views >> text=History")
            await page.wait_for_url(re.compile(r"/console/history"))
            rows = page.locator("table.list tbody tr")
            assert await rows.count() == PAGE_SIZE
            await page.fill("input[name=q]", "closed")  # a status word is searched in the text too
            await page.goto(f"{base}/console/history?status=closed")
            statuses = await page.locator("table.list tbody td:nth-child(3)").all_inner_texts()
            assert statuses and set(statuses) == {"closed"}
            await shot(page, "04-history-closed")

            first = page.locator("table.list tbody td a").first
            esc_id = await first.inner_text()
            await first.click()
            await page.wait_for_url(re.compile(rf"/console/escalations/{esc_id}$"))
            assert await page.locator("#audit tbody tr").count() >= 2
            assert "escalation closed" in await page.locator("#audit").inner_text()
            await shot(page, "05-escalation-history")

            await page.click("nav.views >> text=Dashboard")
            await page.wait_for_url(re.compile(r"/console/dashboard"))
            charts = page.locator("svg[role=img]")
            assert await charts.count() == 3
            box = await charts.first.bounding_box()
            assert box and box["width"] > 400 and box["height"] > 100  # drawn, not an empty box
            assert await page.locator("svg circle.point").count() >= 2  # weekly: two weeks of history
            assert await page.locator("svg rect.bar").count() >= 3
            await shot(page, "06-dashboard")
        finally:
            await browser.close()

    names = sorted(p.name for p in shots.iterdir())
    assert len(names) == 6 and all((shots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    keep = ROOT / "out" / "screenshots"  # out/ is ignored by git: artefacts to look at, never committed
    keep.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(shots / name, keep / name)
