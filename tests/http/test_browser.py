"""The orders page in Debian's Chromium (Playwright, headless) against a real
``tradercoin serve`` on a free loopback port with a temp SQLite file.

A newcomer registers, places a MARKET order and sees its row turn FILLED without a reload;
then, with the page offline, an order is canceled elsewhere, and the missed update arrives
after the page reconnects. A screenshot is saved in the test's tmp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import missing

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE_MS = 30_000


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


def _operator_changes_the_poll_rate(browser: Any, server: str, tmp_path: Path) -> None:
    env = {**os.environ, "TRADERCOIN_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    command = [sys.executable, "-m", "tradercoin.cli", "users", "add", "root", "--operator"]
    subprocess.run([*command, "--password", "operator pass"], env=env, check=True, cwd=tmp_path)
    page = browser.new_context().new_page()
    page.goto(server)
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password (8 characters or more)").fill("operator pass")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#actors-body tr")
    assert "newcomer" in page.inner_text("#actors-body")
    field = page.locator("#actors-body input").first
    field.fill("2s")
    field.press("Enter")
    page.wait_for_selector("#notice:has-text('now polls every 2')")


def _row(page: Any, order_id: int, status: str) -> None:
    page.wait_for_selector(
        f'#orders-body tr[data-order-id="{order_id}"][data-status="{status}"]', timeout=LIVE_MS
    )


def test_register_trade_and_follow_orders_live_through_a_disconnect(
    server: str, browser: Any, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server)

    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password (8 characters or more)").fill("correct horse")
    page.get_by_role("button", name="Register").click()
    page.wait_for_selector('#conn[data-state="live"]')
    page.get_by_role("tab", name="Order history").click()  # every order, changing in place

    page.get_by_label("Symbol", exact=True).first.select_option("BTCUSDT")
    page.get_by_label("Quantity").fill("0.010")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_selector("#orders-body tr[data-order-id]")
    market_id = int(page.get_attribute("#orders-body tr[data-order-id]", "data-order-id"))
    _row(page, market_id, "filled")  # pushed over /ws: the page never reloaded

    token = httpx.post(
        f"{server}/api/auth/login", json={"username": "newcomer", "password": "correct horse"}
    ).json()["token"]
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"})
    filled = api.get(f"/api/orders/{market_id}").json()["data"]
    price = (Decimal(filled["avg_price"]) * Decimal("0.97")).quantize(Decimal("0.1"))
    limit = api.post(
        "/api/orders",
        json={
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.010",
            "price": str(price),
        },
    )
    assert limit.status_code == 201, limit.text
    limit_id = limit.json()["data"]["id"]
    _row(page, limit_id, "new")

    context.set_offline(True)
    page.wait_for_selector('#conn[data-state="offline"]')
    assert api.delete(f"/api/orders/{limit_id}").json()["data"]["status"] == "canceled"
    assert (
        page.get_attribute(f'#orders-body tr[data-order-id="{limit_id}"]', "data-status") == "new"
    )
    context.set_offline(False)
    _row(page, limit_id, "canceled")  # replayed from the last seq after the reconnect
    page.wait_for_selector('#conn[data-state="live"]')
    assert page.locator("#orders-body tr").count() == 2  # nothing twice

    page.screenshot(path=str(tmp_path / "orders-page.png"), full_page=True)
    _operator_changes_the_poll_rate(browser, server, tmp_path)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    small.goto(server)
    small.get_by_role("tab", name="Order history").click()
    small.wait_for_selector(f'#orders-body tr[data-order-id="{limit_id}"]')
    small.screenshot(path=str(tmp_path / "orders-phone.png"), full_page=True)
    assert errors == []
