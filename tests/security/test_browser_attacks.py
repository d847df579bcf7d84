"""The console attacks of a hostile page, replayed in headless Chromium against the real server: a
page on another port of the same host plants a CSRF cookie and posts an answer, and a rebinding
domain that resolves to 127.0.0.1 opens the console of a server without a token."""

from __future__ import annotations

import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from serving import OPERATOR_TOKEN

from escalation_matrix.loader import load_policy
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--host-resolver-rules=MAP rebind.test 127.0.0.1"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")]


@pytest.fixture
def attacker(tmp_path):
    """A web page on another port of 127.0.0.1."""
    folder = tmp_path / "site"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_page_on_another_port_cannot_answer_through_the_operators_browser(serve, attacker):
    from playwright.async_api import async_playwright

    served = serve()
    esc = Operations(Store(served.db), load_policy()).create("Approve the refund", severity="L2")["id"]
    folder, origin = attacker
    (folder / "attack.html").write_text(f"""<!doctype html><body>
<form id="f" method="post" action="{served.base}/console/escalations/{esc}/answer">
<input name="csrf" value="planted"><input name="answer" value="attacker text"></form>
<script>document.cookie = "escalation_matrix_csrf=planted; path=/";
document.cookie = "escalation_matrix_operator=mallory; path=/";
document.getElementById("f").submit();</script></body>""")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{served.base}/console?token={OPERATOR_TOKEN}")  # the operator is signed in
            assert await page.locator(f"article[data-escalation-id='{esc}']").count() == 1
            await page.goto(f"{origin}/attack.html")
            await page.wait_for_load_state("load")
            await page.wait_for_url(f"{served.base}/**")
            body = await page.content()
        finally:
            await browser.close()
    assert "cross-origin request refused" in body or "Form expired" in body
    record = Store(served.db).escalation(esc)
    assert record["status"] == "open" and record["answer"] is None


async def test_a_rebinding_domain_cannot_open_a_console_without_a_token(serve):
    from playwright.async_api import async_playwright

    served = serve(token=None)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page()
            response = await page.goto(f"http://rebind.test:{served.port}/console")
            status, text = response.status, await page.content()
            own = await page.goto(f"{served.base}/console")
            own_status = own.status
        finally:
            await browser.close()
    assert status == 421 and "unknown Host" in text and "Open escalations" not in text
    assert own_status == 200


async def test_a_page_on_another_port_cannot_plant_a_flash_message(serve, attacker):
    from playwright.async_api import async_playwright

    served = serve()
    lure = "Your session expired: paste your token at evil.example"
    folder, origin = attacker
    (folder / "flash.html").write_text(f"""<!doctype html><body><script>
document.cookie = "escalation_matrix_flash=error%3A{lure.replace(' ', '%20')}; path=/console";
document.cookie = "escalation_matrix_flash=error%3A{lure.replace(' ', '%20')}; path=/";
location = "{served.base}/console";</script></body>""")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{served.base}/console?token={OPERATOR_TOKEN}")
            await page.goto(f"{origin}/flash.html")
            await page.wait_for_url(f"{served.base}/console")
            await page.wait_for_selector("text=Open escalations")
            body = await page.content()
            planted = [c["name"] for c in await page.context.cookies() if c["name"] == "escalation_matrix_flash"]
        finally:
            await browser.close()
    assert planted, "the neighbour page did plant its cookie (the attack ran)"
    assert "evil.example" not in body and 'class="flash' not in body  # (the stylesheet names .flash--error)
