"""account.apply_fill and account_view on their own, against figures computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradercoin.exchange.sim.account import account_view, apply_fill
from tradercoin.exchange.sim.engine import Account

D = Decimal


def _account(balance: str = "1000") -> Account:
    return Account(api_key="k" * 64, balance=D(balance))


def test_short_side_mirrors_the_long_side() -> None:
    account = _account()
    assert apply_fill(account, "ETHUSDT", "SELL", D("1"), D("3000"), D("1.2"), 1) == 0
    assert apply_fill(account, "ETHUSDT", "SELL", D("2"), D("3300"), D("3.3"), 2) == 0
    position = account.positions["ETHUSDT"]
    # (1 x 3000 + 2 x 3300) / 3 = 3200; the open part paid 4.5: break-even 3200 - 1.5
    assert (position.amount, position.entry_price, position.break_even) == (
        D("-3"),
        D("3200"),
        D("3198.5"),
    )
    # buying 1 back at 3100 realizes (3200 - 3100) x 1
    assert apply_fill(account, "ETHUSDT", "BUY", D("1"), D("3100"), D("1.24"), 3) == D("100")
    assert (position.amount, position.entry_price) == (D("-2"), D("3200"))
    assert position.break_even == D("3198.5")  # the remaining 2 keep their share of fees
    # buying 5 at 3400: closes 2 at a loss of 400, opens 3 long at 3400
    assert apply_fill(account, "ETHUSDT", "BUY", D("5"), D("3400"), D("8.5"), 4) == D("-400")
    assert (position.amount, position.entry_price) == (D("3"), D("3400"))
    assert position.break_even == D("3401.7")  # 3/5 of 8.5 over 3
    assert position.realized == D("-300")
    assert account.balance == D("1000") - D("1.2") - D("3.3") + 100 - D("1.24") - 400 - D("8.5")
    assert (account.balance_time, position.update_time) == (4, 4)


def test_close_to_zero_clears_entry_and_fees() -> None:
    account = _account()
    apply_fill(account, "BTCUSDT", "BUY", D("0.5"), D("40000"), D("4"), 1)
    assert apply_fill(account, "BTCUSDT", "SELL", D("0.5"), D("40100"), D("4.01"), 2) == D("50")
    position = account.positions["BTCUSDT"]
    assert (position.amount, position.entry_price, position.open_fees) == (0, 0, 0)
    assert position.break_even == 0
    assert account.balance == D("1000") - 4 + 50 - D("4.01")


def test_liquidation_estimate_counts_the_other_positions() -> None:
    account = _account("1000")
    apply_fill(account, "BTCUSDT", "BUY", D("0.1"), D("50000"), D("0"), 1)
    apply_fill(account, "ETHUSDT", "SELL", D("1"), D("3000"), D("0"), 1)
    view = account_view(account, {"BTCUSDT": D("50000"), "ETHUSDT": D("3100")})
    btc, eth = view.positions
    assert (eth.unrealized, eth.maint_margin) == (D("-100"), D("12.4"))  # 3100 x 0.4 %
    # (WB - TMM1 + UPNL1 + cum - 1 x 0.1 x 50000) / (0.1 x 0.004 - 1 x 0.1)
    expected = (D("1000") - D("12.4") + D("-100") - D("5000")) / (D("0.0004") - D("0.1"))
    assert btc.liquidation_price == expected.quantize(D("0.00000001")) == D("41289.15662651")
    # at that price the margin balance equals the maintenance margin of both positions
    at = btc.liquidation_price
    equity = D("1000") + D("0.1") * (at - 50000) - 100
    assert abs(equity - (D("0.1") * at * D("0.004") + D("12.4"))) < D("0.000001")


def test_a_long_that_cannot_be_liquidated_shows_zero() -> None:
    account = _account("100000")
    apply_fill(account, "BTCUSDT", "BUY", D("0.01"), D("50000"), D("0"), 1)
    [btc] = account_view(account, {"BTCUSDT": D("50000")}).positions
    assert btc.liquidation_price == 0


@pytest.mark.parametrize(
    ("notional", "leverage", "maint"),
    [
        ("40000", 20, "160"),  # bracket 1: 0.4 %, cum 0
        ("100000", 20, "450"),  # bracket 2: 0.5 % - 50
        ("1000000", 20, "8700"),  # bracket 3: 1 % - 1300
    ],
)
def test_margins_follow_leverage_and_brackets(notional: str, leverage: int, maint: str) -> None:
    account = _account("10000000")
    apply_fill(account, "BTCUSDT", "BUY", D(notional) / 50000, D("50000"), D("0"), 1)
    view = account_view(account, {"BTCUSDT": D("50000")})
    assert view.position_margin == D(notional) / leverage
    assert view.maint_margin == D(maint)
    assert view.available == D("10000000") - D(notional) / leverage
