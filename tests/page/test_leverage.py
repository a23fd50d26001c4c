"""Leverage from the page in Debian's Chromium: set with the keyboard for the order form's
symbol, checked against the exchange's own account record; a bad value gets a sentence
beside the field and sends nothing, and the exchange's refusal reads as its reason."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.page.harness import LIVE_MS, Desk
from tests.page.test_trader import browser, desk  # noqa: F401  (fixtures)
from tests.page.trader import keyed_trader

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _set(page: Any, value: str) -> str:
    page.get_by_label("Leverage").fill(value)
    page.get_by_label("Leverage").press("Enter")
    result = page.locator("#lev-result")
    expect(result).not_to_have_text("Changing…", timeout=LIVE_MS)
    expect(result).not_to_have_text("", timeout=LIVE_MS)
    return str(result.inner_text())


def _leverage_at_exchange(service: Desk, api_key: str, symbol: str) -> int | None:
    page = service.admin("GET", "account", api_key=api_key)
    return next((p["leverage"] for p in page["positions"] if p["symbol"] == symbol), None)


def test_leverage_is_set_from_the_page(desk: Desk, browser: Any) -> None:  # noqa: F811
    page, keys = keyed_trader(desk, browser, "leo")
    expect(page.locator("#lev-symbol")).to_have_text("BTCUSDT")
    said = _set(page, "abc")
    assert said == "Not changed: see the highlighted field."
    assert "Leverage must be a whole number from 1 to 125." in page.inner_text(
        "#lev-leverage-error"
    )
    assert page.get_attribute("#lev-leverage", "aria-invalid") == "true"

    said = _set(page, "7")
    assert said.startswith("BTCUSDT leverage is now 7x"), said
    page.select_option("#order-symbol", "SOLUSDT")
    expect(page.locator("#lev-symbol")).to_have_text("SOLUSDT")
    said = _set(page, "100")  # the alts' brackets stop at 75x
    assert said == "Not changed: The exchange refused the leverage: Leverage 100 is not valid"

    # the exchange's record: BTCUSDT at 7x (shown by the account once it has a position)
    page.select_option("#order-symbol", "BTCUSDT")
    page.focus("#place")
    page.keyboard.press("Enter")  # the default market buy
    page.wait_for_selector('#positions-body tr[data-symbol="BTCUSDT"]', timeout=LIVE_MS)
    assert _leverage_at_exchange(desk, keys["api_key"], "BTCUSDT") == 7
    cells = page.locator('#positions-body tr[data-symbol="BTCUSDT"] td')
    expect(cells.nth(5)).to_contain_text("7", timeout=LIVE_MS)
