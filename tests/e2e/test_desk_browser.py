"""End to end in real headless Chromium (Debian's ``chromium``, driven by Playwright) against
a real uvicorn server: an officer clears the worked example's two findings, an auditor sees
both decisions in a chain that verifies. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator

import pytest

from reconciler.web.server import DeskServer
from reconciler.web.settings import WebSettings
from tests.conftest import ROOT
from tests.web.conftest import PASSWORD, run_example

playwright_api = pytest.importorskip("playwright.sync_api")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    app = run_example()
    server = DeskServer(WebSettings(session_secret="e2e" * 8, port=_free_port()), app)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
    app.engine.dispose()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_officer_clears_the_example_and_auditor_sees_a_verified_chain(
        server: str, database_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    keep = database_url.startswith("sqlite")  # one set of screenshots, not two racing
    args = ["--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"]
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def shot(name: str) -> None:
            if keep:
                page.screenshot(path=str(ARTIFACTS / name), full_page=True)

        def login(user: str) -> None:
            page.goto(f"{server}/login")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

        login("olga")
        assert page.url.endswith("/queue")
        assert page.locator("table.queue tbody tr").count() == 2
        shot("queue-en.png")

        # filter to the wage finding, open it, check the evidence, dismiss without a reason
        page.select_option("select[name=rule]", "wage_underdeclared")
        page.click("form#filters button[type=submit]")
        rows = page.locator("table.queue tbody tr")
        assert rows.count() == 1 and "Muhammad Imran Khan" in rows.first.inner_text()
        rows.first.locator("a").click()
        assert "below" in page.locator("p.reasoning").inner_text()
        assert page.locator("tr.differs").count() >= 1  # 3,750 declared beside 5,000 paid
        # the registry's Arabic name, laid out right to left beside the partner's record
        assert page.locator("td[dir=rtl]", has_text="محمد عمران خان").count() >= 1
        shot("finding-en.png")
        page.goto(page.url + "?lang=ar")
        assert page.locator("html").get_attribute("dir") == "rtl"
        shot("finding-ar.png")
        page.goto(f"{server}/queue?lang=ar")
        shot("queue-ar.png")
        page.goto(f"{server}/queue?lang=en&rule=wage_underdeclared")
        page.locator("table.queue tbody tr a").first.click()

        page.click("button[value=dismiss]")
        assert "a dismissal needs a reason" in page.content()
        page.go_back()
        page.fill("#reason", "Employer showed a signed wage agreement at 3,750")
        page.click("button[value=dismiss]")
        assert page.locator("#status").inner_text() == "dismissed"

        # the auto-registered one: confirm it
        page.goto(f"{server}/queue")
        page.locator("table.queue tbody tr a", has_text="missing_registration").click()
        # her registry side is what the auto-registration created
        assert re.search(r"auto-registered: engagement RG\d{8}", page.content())
        page.click("button[value=confirm]")
        assert page.locator("#status").inner_text() == "resolved"
        page.goto(f"{server}/queue")
        assert "Nothing to show." in page.locator("table.queue").inner_text()
        page.click("header form button")  # log out

        login("aude")
        assert page.url.endswith("/audit")
        assert "chain intact" in page.locator("#chain").inner_text()
        decisions = page.locator("tr.action-finding-decision")
        assert decisions.count() == 2
        text = decisions.all_inner_texts()
        assert any("dismiss" in t and "olga" in t for t in text)
        assert any("confirm" in t and "olga" in t for t in text)
        shot("audit-en.png")
        browser.close()
