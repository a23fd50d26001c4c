"""The page's fills, cancel-all and operator views in Debian's Chromium against a real
``tradercoin serve``; the oracle is the exchange's own record (the simulator's control
routes) and what the browser really shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import missing
from tests.page.harness import (
    CHROMIUM,
    LIVE_MS,
    Desk,
    chromium,
    log_in,
    register,
    row,
    running_desk,
)

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


def _resting(api: Any, count: int, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
    """``count`` BUY LIMIT orders 5 % under the mark, placed through the API."""
    mark = Decimal(api.get(f"/api/prices?symbols={symbol}").json()["data"][symbol] or "50000")
    placed = []
    for i in range(count):
        price = (mark * Decimal("0.95") - i).quantize(Decimal("0.1"))
        body = {"symbol": symbol, "side": "BUY", "type": "LIMIT", "quantity": "0.010"}
        answer = api.post("/api/orders", json={**body, "price": str(price)})
        assert answer.status_code == 201, answer.text
        placed.append(answer.json()["data"])
    return placed


def test_fills_of_a_row_and_cancel_all(desk: Desk, browser: Any) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    register(page, desk.url, "erin")
    api = desk.api("erin")
    keys = desk.admin("POST", "accounts")  # keys whose account we can ask the exchange about
    assert api.put("/api/credentials", json=keys).status_code == 200
    orders = _resting(api, 3)
    for order in orders:
        row(page, order["id"], "new")
    first = orders[0]
    desk.fill("BTCUSDT", first["exchange_order_id"])
    page.get_by_role("tab", name="Order history").click()
    row(page, first["id"], "filled")
    page.get_by_role("button", name=f"Show the fills of order {first['id']}").click()
    fills = page.wait_for_selector("table.fills tbody tr", timeout=LIVE_MS)
    cells = fills.query_selector_all("td")
    [trade] = [
        t
        for t in desk.admin("GET", "trades", api_key=keys["api_key"])
        if t["order_id"] == first["exchange_order_id"]
    ]
    assert Decimal(cells[1].inner_text().replace(",", "")) == Decimal(trade["price"])
    assert Decimal(cells[2].inner_text()) == Decimal(trade["qty"])
    fee, asset = cells[3].inner_text().split()
    assert (Decimal(fee), asset) == (Decimal(trade["commission"]), trade["commission_asset"])
    assert cells[3].inner_text().endswith("USDT") and cells[5].inner_text() in ("Maker", "Taker")

    page.get_by_role("tab", name="Open orders").click()
    row(page, orders[1]["id"], "new")
    page.get_by_role("button", name="Cancel all open orders").click()
    expect(page.locator("#notice")).to_have_text(
        re.compile(r"^2 open orders canceled"), timeout=LIVE_MS
    )
    for order in orders[1:]:
        page.wait_for_selector(f'#orders-body tr[data-order-id="{order["id"]}"]', state="detached")
    truth = {
        o["order_id"]: o["status"] for o in desk.admin("GET", "orders", api_key=keys["api_key"])
    }
    assert [truth[o["exchange_order_id"]] for o in orders] == ["FILLED", "CANCELED", "CANCELED"]


def test_operator_table_refreshes_itself_and_explains_intervals(desk: Desk, browser: Any) -> None:
    desk.operator()
    user = browser.new_context().new_page()
    register(user, desk.url, "frank")
    ops = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(ops, desk.url, "root", "operator pass")
    frank_row = ops.locator("#actors-body tr", has_text="frank")
    expect(frank_row).to_have_count(1, timeout=LIVE_MS)
    cells = frank_row.locator("td")
    expect(cells.nth(2)).to_have_text("0")
    desk.api("frank").get("/api/orders")  # the server's page cache attaches to the actor
    _resting(desk.api("frank"), 2)
    expect(cells.nth(2)).to_have_text("2", timeout=15_000)  # no click: it refreshed itself
    assert cells.nth(5).inner_text() != "—"  # why this interval
    assert cells.nth(6).inner_text() == "1"  # one browser tab; the page cache is not a tab
    assert cells.nth(7).inner_text() == "0"
    expect(ops.locator("#budget-chart")).to_have_attribute(
        "data-points", re.compile(r"^[2-9]|\d\d"), timeout=15_000
    )
    assert "weight used in the last minute" in ops.inner_text("#governor")
    streams = ops.locator("#streams")  # the users' listenKeys share the hub's connection
    expect(streams).to_contain_text(re.compile(r"streams on 1 exchange connection"))
    expect(streams).to_contain_text("0 refused")
