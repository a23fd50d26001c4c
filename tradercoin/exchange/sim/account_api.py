"""The account routes and events: ``GET /fapi/v3/account`` (and ``/fapi/v2/account``),
``/fapi/v3/balance``, ``/fapi/v3/positionRisk``, ``/fapi/v1/leverageBracket``,
``/fapi/v1/symbolConfig``, ``POST /fapi/v1/leverage``, the margin check of new orders, and
the ``ACCOUNT_UPDATE`` / ``ACCOUNT_CONFIG_UPDATE`` events.

Shapes follow the USDⓈ-M docs (Account Information V2/V3, Futures Account Balance V3,
Position Information V3, Notional and Leverage Brackets, Symbol Configuration, Change
Initial Leverage, Event: Balance and Position Update): every decimal is a string (8 places
for money; quantities at the symbol's step), times are int milliseconds, flags JSON
booleans. The leverage brackets are JSON numbers, as Binance sends them. REST answers and
the stream's ``ACCOUNT_UPDATE`` take their figures from the same functions of
:mod:`~tradercoin.exchange.sim.account` at the marks of the moment, so they agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradercoin.exchange.sim.account import (
    AccountView,
    PositionView,
    account_position,
    account_view,
    active_symbols,
    check_order_margin,
    leverage_of,
    max_notional,
    plain,
    position_view,
    set_leverage,
)
from tradercoin.exchange.sim.brackets import Bracket, brackets_of
from tradercoin.exchange.sim.errors import mandatory
from tradercoin.exchange.sim.validate import parse_int, require, symbol_of

if TYPE_CHECKING:
    from tradercoin.exchange.sim.engine import Account
    from tradercoin.exchange.sim.routes import Call
    from tradercoin.exchange.sim.simulator import Simulator
    from tradercoin.exchange.sim.validate import OrderRequest

__all__ = [
    "account_config_update",
    "account_update",
    "balance",
    "change_leverage",
    "check_margin",
    "futures_account",
    "futures_account_v2",
    "leverage_bracket",
    "position_risk",
    "symbol_config",
]

ASSET = "USDT"


def s8(value: Decimal) -> str:
    return f"{value:.8f}"


def current_view(sim: Simulator, account: Account) -> AccountView:
    """The account at the marks of this moment."""
    return account_view(account, marks_for(sim, active_symbols(account)))


def marks_for(sim: Simulator, symbols: Iterable[str]) -> dict[str, Decimal]:
    return {symbol: sim.mark(symbol) for symbol in symbols}


# --- REST --------------------------------------------------------------------------------


def futures_account(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v3/account`` (single-asset mode)."""
    return _totals(sim, current_view(sim, call.account))


def _totals(sim: Simulator, view: AccountView) -> dict[str, Any]:
    return {
        "totalInitialMargin": s8(view.initial_margin),
        "totalMaintMargin": s8(view.maint_margin),
        "totalWalletBalance": s8(view.wallet),
        "totalUnrealizedProfit": s8(view.unrealized),
        "totalMarginBalance": s8(view.margin_balance),
        "totalPositionInitialMargin": s8(view.position_margin),
        "totalOpenOrderInitialMargin": s8(view.open_order_margin),
        "totalCrossWalletBalance": s8(view.wallet),
        "totalCrossUnPnl": s8(view.unrealized),
        "availableBalance": s8(view.available),
        "maxWithdrawAmount": s8(view.max_withdraw),
        "assets": [_asset(view)],
        "positions": [_account_position(sim, p) for p in view.positions],
    }


def futures_account_v2(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v2/account`` (python-binance's ``futures_account``): v3's totals plus the
    account flags, ``marginAvailable`` per asset, and a row for every symbol."""
    view = current_view(sim, call.account)
    body = _totals(sim, view)
    flags = {"feeTier": 0, "feeBurn": True, "canTrade": True, "canDeposit": True,
             "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False,
             "tradeGroupId": -1}  # fmt: skip
    body = {**flags, **body}
    body["assets"] = [{**_asset(view), "marginAvailable": True}]
    body["positions"] = [_v2_position(sim, call.account, s, view) for s in sim.specs]
    return body


def _v2_position(sim: Simulator, account: Account, symbol: str, view: AccountView) -> Any:
    row = view.position(symbol)
    leverage = leverage_of(account, symbol)
    zero = Decimal(0)
    return {
        "symbol": symbol,
        "initialMargin": s8(row.initial_margin + row.open_order_margin if row else zero),
        "maintMargin": s8(row.maint_margin if row else zero),
        "unrealizedProfit": s8(row.unrealized if row else zero),
        "positionInitialMargin": s8(row.initial_margin if row else zero),
        "openOrderInitialMargin": s8(row.open_order_margin if row else zero),
        "leverage": str(leverage),
        "isolated": False,
        "entryPrice": s8(row.entry_price if row else zero),
        "maxNotional": plain(max_notional(symbol, leverage)),
        "bidNotional": s8(row.bid_notional if row else zero),
        "askNotional": s8(row.ask_notional if row else zero),
        "positionSide": "BOTH",
        "positionAmt": sim.specs[symbol].fmt_qty(row.amount if row else zero),
        "updateTime": row.update_time if row else 0,
    }


def _asset(view: AccountView) -> dict[str, Any]:
    return {
        "asset": ASSET,
        "walletBalance": s8(view.wallet),
        "unrealizedProfit": s8(view.unrealized),
        "marginBalance": s8(view.margin_balance),
        "maintMargin": s8(view.maint_margin),
        "initialMargin": s8(view.initial_margin),
        "positionInitialMargin": s8(view.position_margin),
        "openOrderInitialMargin": s8(view.open_order_margin),
        "crossWalletBalance": s8(view.wallet),
        "crossUnPnl": s8(view.unrealized),
        "availableBalance": s8(view.available),
        "maxWithdrawAmount": s8(view.max_withdraw),
        "updateTime": view.update_time,
    }


def _account_position(sim: Simulator, p: PositionView) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": sim.specs[p.symbol].fmt_qty(p.amount),
        "unrealizedProfit": s8(p.unrealized),
        "isolatedMargin": "0",
        "notional": s8(p.notional),
        "isolatedWallet": "0",
        "initialMargin": s8(p.initial_margin + p.open_order_margin),
        "maintMargin": s8(p.maint_margin),
        "updateTime": p.update_time,
    }


def balance(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v3/balance``."""
    view = current_view(sim, call.account)
    return [
        {
            "accountAlias": account_alias(call.account),
            "asset": ASSET,
            "balance": s8(view.wallet),
            "crossWalletBalance": s8(view.wallet),
            "crossUnPnl": s8(view.unrealized),
            "availableBalance": s8(view.available),
            "maxWithdrawAmount": s8(view.max_withdraw),
            "marginAvailable": True,
            "updateTime": view.update_time,
        }
    ]


def account_alias(account: Account) -> str:
    """A short stable alias per account, like Binance's ``"SgsR"``."""
    digest = hashlib.sha256(account.api_key.encode()).digest()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(letters[b % len(letters)] for b in digest[:4])


def position_risk(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v3/positionRisk``: symbols with a position or open orders."""
    wanted = symbol_of(call.params, sim.specs).symbol if call.params.get("symbol") else None
    view = current_view(sim, call.account)
    return [_risk(sim, p) for p in view.positions if wanted in (None, p.symbol)]


def _risk(sim: Simulator, p: PositionView) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": sim.specs[p.symbol].fmt_qty(p.amount),
        "entryPrice": s8(p.entry_price),
        "breakEvenPrice": s8(p.break_even),
        "markPrice": s8(p.mark),
        "unRealizedProfit": s8(p.unrealized),
        "liquidationPrice": s8(p.liquidation_price),
        "isolatedMargin": "0",
        "notional": s8(p.notional),
        "marginAsset": ASSET,
        "isolatedWallet": "0",
        "initialMargin": s8(p.initial_margin + p.open_order_margin),
        "maintMargin": s8(p.maint_margin),
        "positionInitialMargin": s8(p.initial_margin),
        "openOrderInitialMargin": s8(p.open_order_margin),
        "adl": 0,
        "bidNotional": s8(p.bid_notional),
        "askNotional": s8(p.ask_notional),
        "updateTime": p.update_time,
    }


def leverage_bracket(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/leverageBracket``: an object with ``symbol``, a list without."""
    if call.params.get("symbol"):
        return _brackets(symbol_of(call.params, sim.specs).symbol)
    return [_brackets(symbol) for symbol in sim.specs]


def _brackets(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "brackets": [_bracket(b) for b in brackets_of(symbol)]}


def _bracket(b: Bracket) -> dict[str, Any]:
    # JSON numbers on the wire, as Binance sends them: the values are short decimals that
    # float represents exactly enough to print back unchanged; no arithmetic happens on them.
    return {
        "bracket": b.bracket,
        "initialLeverage": b.initial_leverage,
        "notionalCap": int(b.cap),
        "notionalFloor": int(b.floor),
        "maintMarginRatio": float(b.mmr),
        "cum": float(b.cum),
    }


def symbol_config(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/symbolConfig``: margin type and leverage per symbol."""
    if call.params.get("symbol"):
        symbols = [symbol_of(call.params, sim.specs).symbol]
    else:
        symbols = list(sim.specs)
    return [_config(call.account, symbol) for symbol in symbols]


def _config(account: Account, symbol: str) -> dict[str, Any]:
    leverage = leverage_of(account, symbol)
    return {
        "symbol": symbol,
        "marginType": "CROSSED",
        "isAutoAddMargin": False,
        "leverage": leverage,
        "maxNotionalValue": plain(max_notional(symbol, leverage)),
    }


def check_margin(sim: Simulator, account: Account, request: OrderRequest) -> None:
    """Binance's margin checks on a new order that is not reduce-only (-2027, -2019: see
    :func:`~tradercoin.exchange.sim.account.check_order_margin`), at the marks of now."""
    if request.reduce_only:
        return
    symbol = request.spec.symbol
    marks = marks_for(sim, {symbol, *active_symbols(account)})
    price = request.price if request.type == "LIMIT" else marks[symbol]
    check_order_margin(account, symbol, request.side, request.quantity, price, marks)


def change_leverage(sim: Simulator, call: Call) -> Any:
    """``POST /fapi/v1/leverage``; pushes ``ACCOUNT_CONFIG_UPDATE`` to the user stream."""
    symbol = symbol_of(call.params, sim.specs).symbol
    require(call.params, "leverage")
    leverage = parse_int(call.params, "leverage")
    if leverage is None:
        raise mandatory("leverage")
    marks = marks_for(sim, {symbol, *active_symbols(call.account)})
    cap = set_leverage(call.account, symbol, leverage, marks)
    if sim.streams.wants(call.account):
        sim.streams.publish(call.account, account_config_update(symbol, leverage, call.now_ms))
    return {"leverage": leverage, "maxNotionalValue": plain(cap), "symbol": symbol}


# --- user stream -------------------------------------------------------------------------


def account_update(
    sim: Simulator, account: Account, symbol: str, event_ms: int, tx_ms: int
) -> dict[str, Any]:
    """``ACCOUNT_UPDATE`` (reason ``ORDER``) after a fill on ``symbol``: the USDT balance
    and the one changed position, with the same figures the REST routes answer now."""
    position = position_view(account, symbol, sim.mark(symbol))
    stored = account_position(account, symbol)
    wallet = s8(account.balance)
    return {
        "e": "ACCOUNT_UPDATE",
        "E": event_ms,
        "T": tx_ms,
        "a": {
            "m": "ORDER",
            "B": [{"a": ASSET, "wb": wallet, "cw": wallet, "bc": "0"}],
            "P": [
                {
                    "s": symbol,
                    "pa": sim.specs[symbol].fmt_qty(position.amount),
                    "ep": s8(position.entry_price),
                    "bep": s8(position.break_even),
                    "cr": s8(stored.realized),
                    "up": s8(position.unrealized),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        },
    }


def account_config_update(symbol: str, leverage: int, now_ms: int) -> dict[str, Any]:
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": now_ms, "T": now_ms,
            "ac": {"s": symbol, "l": leverage}}  # fmt: skip
