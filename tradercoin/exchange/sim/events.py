"""Wire shapes: REST order and trade objects, and user-stream events (reference §1, §6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradercoin.exchange.sim.account import open_notional, plain
from tradercoin.exchange.sim.engine import ZERO, SimOrder, Trade
from tradercoin.exchange.sim.markets import SymbolSpec

__all__ = ["ack_wire", "order_trade_update", "order_wire", "user_trade"]


def order_wire(order: SimOrder, *, placed: bool) -> dict[str, Any]:
    """The order object: POST/DELETE (``placed``) carry ``cumQty`` and no ``time``; GET,
    openOrders and allOrders carry ``time`` and no ``cumQty``."""
    spec = order.spec
    wire: dict[str, Any] = {
        "orderId": order.order_id,
        "symbol": spec.symbol,
        "status": order.status,
        "clientOrderId": order.client_order_id,
        "price": spec.fmt_price(order.price),
        "avgPrice": spec.fmt_avg(order.avg_price),
        "origQty": spec.fmt_qty(order.orig_qty),
        "executedQty": spec.fmt_qty(order.executed_qty),
        "cumQuote": spec.fmt_quote(order.cum_quote),
        "timeInForce": order.time_in_force,
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side,
        "positionSide": "BOTH",
        "stopPrice": spec.fmt_price(ZERO),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": order.stp_mode,
        "goodTillDate": order.good_till_date,
        "updateTime": order.update_time,
    }
    if placed:
        wire["cumQty"] = wire["executedQty"]
    else:
        wire["time"] = order.time
    return wire


def ack_wire(order: SimOrder) -> dict[str, Any]:
    """The POST answer with ``newOrderRespType=ACK`` (the default): the order as accepted,
    ``NEW`` with nothing executed, whatever happened to it since.

    Binance's New Order (TRADE) doc (developers.binance.com/docs/derivatives/
    usds-margined-futures/trade/rest-api): "If newOrderRespType is sent as RESULT: MARKET order: the
    final FILLED result of the order will be return directly. LIMIT order with special
    timeInForce: the final status result of the order (FILLED or EXPIRED) will be returned
    directly." Its response example (the ACK default) is NEW with executedQty 0; the final
    state comes later, from the user stream or a query (reference §1).
    """
    spec = order.spec
    wire = order_wire(order, placed=True)
    zero_qty = spec.fmt_qty(ZERO)
    wire.update(
        status="NEW",
        avgPrice=spec.fmt_avg(ZERO),
        executedQty=zero_qty,
        cumQty=zero_qty,
        cumQuote=spec.fmt_quote(ZERO),
        updateTime=order.time,
    )
    return wire


def user_trade(trade: Trade, spec: SymbolSpec) -> dict[str, Any]:
    """One element of ``GET /fapi/v1/userTrades``."""
    return {
        "buyer": trade.side == "BUY",
        "commission": f"{trade.commission:.8f}",
        "commissionAsset": trade.commission_asset,
        "id": trade.id,
        "maker": trade.maker,
        "orderId": trade.order_id,
        "price": spec.fmt_price(trade.price),
        "qty": spec.fmt_qty(trade.qty),
        "quoteQty": spec.fmt_quote(trade.quote_qty),
        "realizedPnl": f"{trade.realized_pnl:.8f}",
        "side": trade.side,
        "positionSide": "BOTH",
        "symbol": trade.symbol,
        "time": trade.time,
    }


def order_trade_update(
    order: SimOrder,
    execution: str,
    trade: Trade | None,
    expiry_reason: int,
    event_ms: int,
    mark: Decimal = ZERO,
) -> dict[str, Any]:
    """``ORDER_TRADE_UPDATE`` for one change; ``N``/``n`` only when a trade paid commission.
    ``b``/``a``: the notional of the account's open BUY/SELL orders on the symbol after the
    change (MARKET orders valued at ``mark``), as positionRisk's bid/askNotional."""
    o = _order_part(order, execution, expiry_reason)
    bids, asks = open_notional(order.account.open_in(order.spec.symbol).values(), mark)
    o["b"], o["a"] = plain(bids), plain(asks)
    o.update(_trade_part(order.spec, trade))
    return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": order.update_time, "o": o}


def _order_part(order: SimOrder, execution: str, expiry_reason: int) -> dict[str, Any]:
    spec = order.spec
    return {
        "s": spec.symbol, "c": order.client_order_id, "S": order.side, "o": order.type,
        "f": order.time_in_force, "q": spec.fmt_qty(order.orig_qty),
        "p": spec.fmt_price(order.price), "ap": spec.fmt_avg(order.avg_price),
        "sp": spec.fmt_price(ZERO), "x": execution, "X": order.status, "i": order.order_id,
        "z": spec.fmt_qty(order.executed_qty), "T": order.update_time, "b": "0", "a": "0",
        "R": order.reduce_only, "wt": "CONTRACT_PRICE", "ot": order.type, "ps": "BOTH",
        "cp": False, "pP": False, "si": 0, "ss": 0, "V": order.stp_mode, "pm": "NONE",
        "gtd": order.good_till_date, "er": str(expiry_reason),
    }  # fmt: skip


def _trade_part(spec: SymbolSpec, trade: Trade | None) -> dict[str, Any]:
    if trade is None:
        return {"l": spec.fmt_qty(ZERO), "L": spec.fmt_price(ZERO), "t": 0, "m": False,
                "rp": "0"}  # fmt: skip
    part: dict[str, Any] = {
        "l": spec.fmt_qty(trade.qty), "L": spec.fmt_price(trade.price), "t": trade.id,
        "m": trade.maker, "rp": f"{trade.realized_pnl:.8f}",
    }  # fmt: skip
    if trade.commission:
        part["N"] = spec.quote_asset
        part["n"] = f"{trade.commission:.8f}"
    return part
