"""The orders filters in Debian's Chromium: side and dates go to the server's query (the
request the page sends says so), and what shows is what the exchange has of that side."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.page.harness import LIVE_MS, Desk
from tests.page.test_trader import browser, desk  # noqa: F401  (fixtures)
from tests.page.trader import keyed_trader

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_side_and_date_filters_are_asked_of_the_server(
    desk: Desk,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    page, keys = keyed_trader(desk, browser, "sid")
    mark = Decimal(page.inner_text("#mark-price").replace(",", ""))
    quantity = str(Decimal(page.input_value("#order-quantity")) * 2)
    with desk.api("sid") as api:
        for side, factor in [("BUY", "0.97"), ("SELL", "1.03"), ("BUY", "0.96"), ("SELL", "1.04")]:
            price = str((mark * Decimal(factor)).quantize(Decimal("0.1")))
            order = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "quantity": quantity}
            answer = api.post("/api/orders", json={**order, "price": price})
            assert answer.status_code == 201, answer.text
    truth = desk.admin("GET", "orders", api_key=keys["api_key"])
    sells = {o["client_order_id"] for o in truth if o["side"] == "SELL"}
    assert len(sells) == 2

    page.get_by_role("tab", name="Order history").click()
    expect(page.locator("#orders-body tr[data-order-id]")).to_have_count(4, timeout=LIVE_MS)
    with page.expect_request(lambda r: "/api/orders?" in r.url and "side=SELL" in r.url):
        page.select_option("#filter-side", "SELL")
    rows = page.locator("#orders-body tr[data-order-id]")
    expect(rows).to_have_count(2, timeout=LIVE_MS)
    shown = {rows.nth(i).locator('td[data-label="Client id"]').inner_text() for i in range(2)}
    assert shown == sells
    expect(page.locator("#page-info")).to_contain_text("2 orders")

    with page.expect_request(lambda r: "/api/orders?" in r.url and "from=" in r.url):
        page.fill("#filter-from", "2999-01-01")
        page.dispatch_event("#filter-from", "change")
    expect(rows).to_have_count(0, timeout=LIVE_MS)
