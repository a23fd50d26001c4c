"""A trader with exchange keys, on a wide page: what the reduce-only and filter tests start from."""

from __future__ import annotations

from typing import Any

from tests.page.harness import Desk, register
from tests.page.test_trader import _use_keys


def keyed_trader(desk: Desk, browser: Any, username: str) -> tuple[Any, dict[str, Any]]:
    """Register ``username`` on a new page and store fresh simulator keys through the
    settings panel; returns the page and the keys (to ask the exchange about the account)."""
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    register(page, desk.url, username)
    keys: dict[str, Any] = desk.admin("POST", "accounts")
    assert "can read the account and trade" in _use_keys(page, keys["api_key"], keys["api_secret"])
    return page, keys
