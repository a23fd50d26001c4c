"""Reduce-only on entry in Debian's Chromium against a real ``tradercoin serve``: the
checkbox (by its label, with the keyboard) sends reduce-only orders, the exchange's own
record says so, both order tables show it, and the exchange's refusal reads as a sentence."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.page.harness import LIVE_MS, Desk, row
from tests.page.test_trader import browser, desk  # noqa: F401  (fixtures)
from tests.page.trader import keyed_trader

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _place(page: Any) -> str:
    """Submit the form with the keyboard; returns what the page said."""
    page.focus("#place")
    page.keyboard.press("Enter")
    page.wait_for_selector("#order-result:has-text('Order '), #order-result:has-text('Not placed')")
    return str(page.inner_text("#order-result"))


def _placed_id(said: str) -> int:
    assert said.startswith("Order "), said
    return int(said.split()[1].rstrip(":"))


def _reduce_only_cell(page: Any, order_id: int) -> Any:
    return page.locator(f'#orders-body tr[data-order-id="{order_id}"] td[data-label="Reduce-only"]')


def test_the_reduce_only_checkbox_reaches_the_exchange_and_both_tables(
    desk: Desk,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    page, keys = keyed_trader(desk, browser, "rita")
    opening = _placed_id(_place(page))  # the default: a market buy, not reduce-only
    quantity = Decimal(page.input_value("#order-quantity"))
    # the market buy fills at the exchange a moment later: the position shows on the page
    page.wait_for_selector('#positions-body tr[data-symbol="BTCUSDT"]', timeout=LIVE_MS)

    box = page.get_by_label("Reduce-only")
    assert not box.is_checked()
    box.focus()
    page.keyboard.press("Space")  # the keyboard alone ticks it
    assert box.is_checked()
    page.check('input[name="side"][value="SELL"]')
    page.select_option("#order-type", "LIMIT")
    mark = Decimal(page.inner_text("#mark-price").replace(",", ""))
    page.fill("#order-price", str((mark * Decimal("1.03")).quantize(Decimal("0.1"))))
    closing = _placed_id(_place(page))
    row(page, closing, "new")  # open orders
    expect(_reduce_only_cell(page, closing)).to_have_text("Yes")

    truth = {o["client_order_id"]: o for o in desk.admin("GET", "orders", api_key=keys["api_key"])}
    by_ours = {o["id"]: o for o in page_orders(desk, "rita")}
    assert truth[by_ours[opening]["client_order_id"]]["reduce_only"] is False
    closing_truth = truth[by_ours[closing]["client_order_id"]]
    assert closing_truth["reduce_only"] is True
    assert Decimal(closing_truth["orig_qty"]) == quantity and closing_truth["side"] == "SELL"

    desk.fill("BTCUSDT", closing_truth["order_id"])
    page.get_by_role("tab", name="Order history").click()
    row(page, closing, "filled")
    expect(_reduce_only_cell(page, closing)).to_have_text("Yes")
    expect(_reduce_only_cell(page, opening)).to_have_text("No")

    page.select_option("#order-type", "MARKET")  # no position left: nothing to reduce
    said = _place(page)
    assert said == "Not placed: The exchange refused the order: ReduceOnly Order is rejected."
    positions = desk.admin("GET", "account", api_key=keys["api_key"])["positions"]
    assert all(Decimal(p["amount"]) == 0 for p in positions)


def page_orders(service: Desk, username: str) -> list[dict[str, Any]]:
    """The user's orders as the service's API lists them (our ids and client ids)."""
    with service.api(username) as client:
        answer = client.get("/api/orders")
        answer.raise_for_status()
        data: list[dict[str, Any]] = answer.json()["data"]
        return data
