"""The trader's page in Debian's Chromium against a real ``tradercoin serve``: what a person
sees, checked against the exchange's own record (the simulator's control routes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import missing
from tests.page.harness import CHROMIUM, LIVE_MS, Desk, chromium, register, row, running_desk

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with chromium() as instance:
        yield instance


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def _errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _use_keys(page: Any, api_key: str, api_secret: str) -> str:
    """Store keys through the settings panel; returns what the panel said."""
    if not page.is_visible("#settings"):
        page.get_by_role("button", name="Exchange keys").click()
    page.get_by_label("API key").fill(api_key)
    page.get_by_label("API secret (never shown again)").fill(api_secret)
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#keys-result")).not_to_have_text(
        re.compile(r"^(Checking.*)?$"), timeout=LIVE_MS
    )
    return str(page.inner_text("#keys-result"))


def _limit_below_mark(page: Any) -> int:
    """Place a resting BUY LIMIT 3 % under the mark with the keyboard; returns its id."""
    mark = Decimal(page.inner_text("#mark-price").replace(",", ""))
    page.select_option("#order-type", "LIMIT")
    price = (mark * Decimal("0.97")).quantize(Decimal("0.1"))
    page.fill("#order-price", str(price))
    page.focus("#order-price")
    page.keyboard.press("Enter")
    page.wait_for_selector("#order-result:has-text('Order ')", timeout=LIVE_MS)
    return int(page.inner_text("#order-result").split()[1].rstrip(":"))


def test_a_fill_at_the_exchange_reaches_both_tabs_and_no_one_else(desk: Desk, browser: Any) -> None:
    alice = browser.new_context(viewport={"width": 1280, "height": 900})
    tab1 = alice.new_page()
    errors = _errors(tab1)
    register(tab1, desk.url, "alice")
    keys = desk.admin("POST", "accounts")
    assert "can read the account and trade" in _use_keys(tab1, keys["api_key"], keys["api_secret"])
    tab2 = alice.new_page()
    tab2.goto(desk.url)
    tab2.wait_for_selector('#conn[data-state="live"]', timeout=LIVE_MS)
    tab2.get_by_role("tab", name="Order history").click()
    bob = browser.new_context().new_page()
    register(bob, desk.url, "bob")

    order_id = _limit_below_mark(tab1)
    row(tab1, order_id, "new")
    row(tab2, order_id, "new")
    truth = desk.admin("GET", "orders", api_key=keys["api_key"])
    [placed] = truth
    desk.fill("BTCUSDT", placed["order_id"])

    for tab in (tab1, tab2):
        toast = tab.wait_for_selector(f"#toasts .toast-filled:has-text('order {order_id}')")
        assert "Filled" in toast.inner_text()
    row(tab2, order_id, "filled")  # history: the row changed in place, no reload
    tab1.wait_for_selector(f'#orders-body tr[data-order-id="{order_id}"]', state="detached")
    account = desk.admin("GET", "account", api_key=keys["api_key"])
    [position] = account["positions"]
    cells = tab1.locator('#positions-body tr[data-symbol="BTCUSDT"] td')
    tab1.wait_for_selector('#positions-body tr[data-symbol="BTCUSDT"]', timeout=LIVE_MS)
    assert Decimal(cells.nth(2).inner_text().replace(",", "")) == Decimal(position["entry_price"])
    assert cells.nth(1).inner_text().startswith("Long ")

    bob.wait_for_timeout(1500)  # anything for bob would have come with alice's
    assert bob.locator("#toasts .toast").count() == 0
    assert bob.locator("#orders-body tr").count() == 0
    assert "alice" not in bob.content()
    assert errors == []


def test_bad_input_gets_a_sentence_beside_the_field_and_places_nothing(
    desk: Desk, browser: Any
) -> None:
    page = browser.new_context().new_page()
    errors = _errors(page)
    page.goto(desk.url)
    page.wait_for_selector("#auth-form")
    assert not page.is_visible("#logout")  # logged out: no "Log out"
    register(page, desk.url, "carol")
    assert page.is_visible("#logout")
    before = desk.admin("GET", "statistics")["orders_created"]
    cases = [
        ("abc", "Quantity must be a number, e.g. 0.01."),
        ("0.0015", "Quantity must be a multiple of 0.001 (the step size of BTCUSDT)."),
        ("0.001", "BTCUSDT needs at least 100.00 USDT"),
    ]
    for text, message in cases:
        page.fill("#order-quantity", text)
        page.get_by_role("button", name="Place order").click()
        assert message in page.inner_text("#order-quantity-error")
        assert page.get_attribute("#order-quantity", "aria-invalid") == "true"
    assert desk.admin("GET", "statistics")["orders_created"] == before  # nothing reached it
    assert page.locator("#orders-body tr").count() == 0

    page.select_option("#order-type", "LIMIT")
    assert page.input_value("#order-price") != ""  # prefilled with the mark
    page.select_option("#order-type", "MARKET")
    assert page.input_value("#order-price") == "" and page.is_disabled("#order-price")

    page.select_option("#order-symbol", "BTCUSDT")  # the default quantity again
    default = page.input_value("#order-quantity")
    page.focus("#place")
    page.keyboard.press("Enter")
    page.wait_for_selector("#order-result:has-text('Order ')", timeout=LIVE_MS)
    assert desk.admin("GET", "statistics")["orders_created"] == before + 1
    assert "rejected" not in page.inner_text("#order-result")
    assert Decimal(default) > 0
    assert errors == []


def test_keys_are_checked_on_save_and_never_shown_again(desk: Desk, browser: Any) -> None:
    page = browser.new_context().new_page()
    register(page, desk.url, "dave")
    said = _use_keys(page, "K" * 64, "S" * 64)
    assert "Not saved: The exchange refused the keys" in said
    assert page.get_attribute("#keys-api-key", "aria-invalid") == "true"
    keys = desk.admin("POST", "accounts")
    said = _use_keys(page, keys["api_key"], keys["api_secret"])
    assert said == "Saved. The keys work: they can read the account and trade."
    assert f"ending in {keys['api_key'][-4:]}" in page.inner_text("#keys-status")
    assert page.input_value("#keys-api-secret") == ""
    assert keys["api_secret"] not in page.content()
    page.get_by_role("button", name="Remove keys").click()
    page.wait_for_selector("#keys-status:has-text('No exchange keys stored')")


def test_the_first_load_is_small_and_docs_work_offline(desk: Desk, browser: Any) -> None:
    context = browser.new_context()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    sizes: dict[str, int] = {}
    page.on(
        "response",
        lambda r: (
            sizes.__setitem__(r.url, len(r.body()))
            if r.request.resource_type in ("script", "stylesheet")
            else None
        ),
    )
    page.goto(desk.url)
    page.wait_for_load_state("networkidle")
    assert sum(sizes.values()) < 100 * 1024, sizes
    docs = context.new_page()
    docs.goto(f"{desk.url}/docs")
    docs.wait_for_selector(".opblock", timeout=LIVE_MS)
    assert docs.locator(".opblock").count() >= 10
    assert outside == []
