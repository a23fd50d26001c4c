"""Account payloads parsed from Binance's documented examples (developers.binance.com,
USDⓈ-M futures: Position Information V3, Futures Account Balance V3, Notional and Leverage
Brackets, Change Initial Leverage, Event: Balance and Position Update)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradercoin.actors.account import update_message
from tradercoin.exchange import account_data as acct
from tradercoin.exchange.parsing import PayloadError

POSITION_RISK_V3 = [
    {
        "symbol": "ADAUSDT",
        "positionSide": "BOTH",
        "positionAmt": "30",
        "entryPrice": "0.385",
        "breakEvenPrice": "0.385077",
        "markPrice": "0.41047590",
        "unRealizedProfit": "0.76427700",
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": "12.31427700",
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": "0.61571385",
        "maintMargin": "0.08004280",
        "positionInitialMargin": "0.61571385",
        "openOrderInitialMargin": "0",
        "adl": 2,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": 1720736417660,
    }
]

BALANCE_V3 = [
    {
        "accountAlias": "SgsR",
        "asset": "USDT",
        "balance": "122607.35137903",
        "crossWalletBalance": "23.72469206",
        "crossUnPnl": "0.00000000",
        "availableBalance": "23.72469206",
        "maxWithdrawAmount": "23.72469206",
        "marginAvailable": True,
        "updateTime": 1617939110373,
    }
]

BRACKETS = [
    {
        "symbol": "ETHUSDT",
        "notionalCoef": 1.50,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": 75,
                "notionalCap": 10000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.0065,
                "cum": 0,
            }
        ],
    }
]

ACCOUNT_UPDATE = {
    "e": "ACCOUNT_UPDATE",
    "E": 1564745798939,
    "T": 1564745798938,
    "a": {
        "m": "ORDER",
        "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
        "P": [
            {
                "s": "BTCUSDT",
                "pa": "0",
                "ep": "0.00000",
                "bep": "0",
                "cr": "200",
                "up": "0",
                "mt": "isolated",
                "iw": "0.00000000",
                "ps": "BOTH",
            },
            {
                "s": "BTCUSDT",
                "pa": "20",
                "ep": "6563.66500",
                "bep": "6563.6",
                "cr": "0",
                "up": "2850.21200",
                "mt": "isolated",
                "iw": "13200.70726908",
                "ps": "LONG",
            },
        ],
    },
}


def test_position_risk_v3() -> None:
    [position] = acct.positions(POSITION_RISK_V3)
    assert position.amount == Decimal(30) and position.entry_price == Decimal("0.385")
    assert position.mark_price == Decimal("0.41047590")
    assert position.unrealized_pnl == Decimal("0.76427700")
    assert position.leverage == 20  # 12.314277 / 0.61571385


def test_balance_v3() -> None:
    [row] = acct.balances(BALANCE_V3)
    assert (row.asset, row.wallet_balance, row.available_balance) == (
        "USDT",
        Decimal("122607.35137903"),
        Decimal("23.72469206"),
    )


def test_leverage_brackets_take_json_numbers_exactly() -> None:
    [bracket] = acct.leverage_brackets(BRACKETS)["ETHUSDT"]
    assert bracket.initial_leverage == 75 and bracket.maint_margin_ratio == Decimal("0.0065")
    single = acct.leverage_brackets(BRACKETS[0])  # one symbol asked: one object
    assert single["ETHUSDT"] == (bracket,)


def test_leverage_answer() -> None:
    change = acct.leverage_change(
        {"leverage": 21, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}
    )
    assert (change.symbol, change.leverage) == ("BTCUSDT", 21)


def test_account_update_becomes_the_page_message() -> None:
    update = acct.account_update(ACCOUNT_UPDATE)
    message = update_message(update)
    assert message["type"] == "account" and message["reason"] == "ORDER"
    assert message["balances"][0]["wallet_balance"] == "122624.12345678"
    long = message["positions"][1]
    assert (long["amount"], long["entry_price"], long["unrealized_pnl"]) == (
        "20",
        "6563.66500",
        "2850.21200",
    )


def test_off_shape_payloads_are_refused() -> None:
    for bad in ({"positions": "x"}, [{"symbol": "BTCUSDT"}], "nope", [1]):
        with pytest.raises(PayloadError):
            acct.positions(bad)
