"""Parsing the reference's verbatim payloads (binance-futures.md §1, §6) into the domain."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradercoin.exchange import parsing
from tradercoin.exchange.protocol import SymbolInfo
from tradercoin.orders import ExchangeUpdate, Fill, OrderStatus

POST_RESPONSE = json.loads(
    '{"orderId":336829446,"symbol":"BTCUSDT","status":"NEW","clientOrderId":"FqEw6cn0vDhrkmfiwLYPeo",'
    '"price":"42088.00","avgPrice":"0.00","origQty":"0.100","executedQty":"0.000","cumQty":"0.000",'
    '"cumQuote":"0.00000","timeInForce":"GTC","type":"LIMIT","reduceOnly":false,"closePosition":false,'
    '"side":"BUY","positionSide":"BOTH","stopPrice":"0.00","workingType":"CONTRACT_PRICE",'
    '"priceProtect":false,"origType":"LIMIT","priceMatch":"NONE","selfTradePreventionMode":"NONE",'
    '"goodTillDate":0,"updateTime":1705385954229}'
)
GET_RESPONSE = json.loads(
    '{"avgPrice":"42088.00","clientOrderId":"abc","cumQuote":"4208.80000","executedQty":"0.100",'
    '"orderId":1917641,"origQty":"0.100","origType":"LIMIT","price":"42088.00","reduceOnly":false,'
    '"side":"BUY","positionSide":"BOTH","status":"FILLED","stopPrice":"0","closePosition":false,'
    '"symbol":"BTCUSDT","time":1579276756075,"timeInForce":"GTC","type":"LIMIT",'
    '"updateTime":1579276756075,"workingType":"CONTRACT_PRICE","priceProtect":false,'
    '"priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0}'
)
USER_TRADE = json.loads(
    '{"buyer":false,"commission":"0.07819010","commissionAsset":"USDT","id":698759,"maker":false,'
    '"orderId":25851813,"price":"7819.01","qty":"0.002","quoteQty":"15.63802",'
    '"realizedPnl":"-0.91539999","side":"SELL","positionSide":"SHORT","symbol":"BTCUSDT",'
    '"time":1569514978020}'
)
EXCHANGE_INFO = json.loads(
    '{"timezone":"UTC","serverTime":1565613908500,"exchangeFilters":[],"rateLimits":[],'
    '"assets":[],"symbols":[{"symbol":"BLZUSDT","pair":"BLZUSDT","contractType":"PERPETUAL",'
    '"status":"TRADING","baseAsset":"BLZ","quoteAsset":"USDT","marginAsset":"USDT",'
    '"pricePrecision":5,"quantityPrecision":0,"baseAssetPrecision":8,"quotePrecision":8,'
    '"filters":[{"filterType":"PRICE_FILTER","maxPrice":"300","minPrice":"0.0001","tickSize":"0.0001"},'
    '{"filterType":"LOT_SIZE","maxQty":"10000000","minQty":"1","stepSize":"1"},'
    '{"filterType":"MARKET_LOT_SIZE","maxQty":"590119","minQty":"1","stepSize":"1"},'
    '{"filterType":"MAX_NUM_ORDERS","limit":200},{"filterType":"MIN_NOTIONAL","notional":"5.0"},'
    '{"filterType":"PERCENT_PRICE","multiplierUp":"1.1500","multiplierDown":"0.8500",'
    '"multiplierDecimal":"4"}],"orderTypes":["LIMIT","MARKET"],"timeInForce":["GTC","IOC","FOK","GTX"]}]}'
)
STREAM_NEW = json.loads(
    '{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{"s":"BTCUSDT","c":"TEST",'
    '"S":"SELL","o":"TRAILING_STOP_MARKET","f":"GTC","q":"0.001","p":"0","ap":"0","sp":"7103.04",'
    '"x":"NEW","X":"NEW","i":8886774,"l":"0","z":"0","L":"0","N":"USDT","n":"0","T":1568879465650,'
    '"t":0,"b":"0","a":"9.91","m":false,"R":false,"wt":"CONTRACT_PRICE","ot":"TRAILING_STOP_MARKET",'
    '"ps":"LONG","cp":false,"AP":"7476.89","cr":"5.0","pP":false,"si":0,"ss":0,"rp":"0",'
    '"V":"EXPIRE_TAKER","pm":"OPPONENT","gtd":0,"er":"0"}}'
)


def _trade_event(**changes: object) -> dict[str, object]:
    """The testnet TRADE/FILLED payload of ccxt #18078 on the doc's event."""
    event = json.loads(json.dumps(STREAM_NEW))
    event["o"].update(
        {
            "x": "TRADE",
            "X": "FILLED",
            "l": "20",
            "z": "20",
            "L": "0.5332",
            "ap": "0.5332",
            "n": "0.00213279",
            "N": "USDT",
            "t": 19334107,
            "rp": "0.24773076",
        }
    )
    event["o"].update(changes)
    return event


def test_post_response_before_any_execution() -> None:
    assert parsing.update_from_order(POST_RESPONSE) == ExchangeUpdate(
        symbol="BTCUSDT",
        exchange_order_id=336829446,
        client_order_id="FqEw6cn0vDhrkmfiwLYPeo",
        status=OrderStatus.NEW,
        executed_qty=Decimal("0.000"),
        avg_price=None,
        update_time=1705385954229,
    )


def test_get_response_filled() -> None:
    update = parsing.update_from_order(GET_RESPONSE)
    assert update.status is OrderStatus.FILLED
    assert update.executed_qty == Decimal("0.100")
    assert update.avg_price == Decimal("42088.00")
    assert update.update_time == 1579276756075


def test_order_without_update_time_uses_creation_time() -> None:
    payload = {k: v for k, v in GET_RESPONSE.items() if k != "updateTime"}
    payload["time"] = 1
    assert parsing.update_from_order(payload).update_time == 1


def test_expired_in_match_is_expired() -> None:
    payload = {**GET_RESPONSE, "status": "EXPIRED_IN_MATCH"}
    assert parsing.update_from_order(payload).status is OrderStatus.EXPIRED


def test_user_trade() -> None:
    assert parsing.fill_from_trade(USER_TRADE) == Fill(
        symbol="BTCUSDT",
        trade_id=698759,
        exchange_order_id=25851813,
        price=Decimal("7819.01"),
        quantity=Decimal("0.002"),
        commission=Decimal("0.07819010"),
        commission_asset="USDT",
        time=1569514978020,
        realized_pnl=Decimal("-0.91539999"),
        maker=False,
    )


def test_exchange_info_takes_tick_and_step_from_filters() -> None:
    assert parsing.symbol_infos(EXCHANGE_INFO) == [
        SymbolInfo(
            symbol="BLZUSDT",
            status="TRADING",
            tick_size=Decimal("0.0001"),
            step_size=Decimal("1"),
            min_qty=Decimal("1"),
            max_qty=Decimal("10000000"),
            min_notional=Decimal("5.0"),
            price_precision=5,
            quantity_precision=0,
        )
    ]


def test_stream_new_has_no_fill() -> None:
    update = parsing.update_from_stream(STREAM_NEW)
    assert update.status is OrderStatus.NEW
    assert update.exchange_order_id == 8886774
    assert update.client_order_id == "TEST"
    assert update.avg_price is None
    assert update.update_time == 1568879465650
    assert update.fills == ()


def test_stream_trade_carries_its_fill() -> None:
    update = parsing.update_from_stream(_trade_event())
    assert update.status is OrderStatus.FILLED
    assert update.executed_qty == Decimal(20)
    assert update.avg_price == Decimal("0.5332")
    assert update.fills == (
        Fill(
            symbol="BTCUSDT",
            trade_id=19334107,
            exchange_order_id=8886774,
            price=Decimal("0.5332"),
            quantity=Decimal(20),
            commission=Decimal("0.00213279"),
            commission_asset="USDT",
            time=1568879465650,
            realized_pnl=Decimal("0.24773076"),
            maker=False,
        ),
    )


def test_stream_trade_without_commission_fields() -> None:
    event = _trade_event()
    del event["o"]["n"], event["o"]["N"]  # type: ignore[attr-defined]
    (fill,) = parsing.update_from_stream(event).fills
    assert fill.commission == 0
    assert fill.commission_asset == ""


def test_stream_trade_with_zero_trade_id_is_no_fill() -> None:
    assert parsing.update_from_stream(_trade_event(t=0)).fills == ()


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "NEW",
        {**POST_RESPONSE, "executedQty": 0.5},
        {**POST_RESPONSE, "executedQty": "abc"},
        {**POST_RESPONSE, "executedQty": "NaN"},
        {**POST_RESPONSE, "orderId": "12x"},
        {**POST_RESPONSE, "orderId": True},
        {**POST_RESPONSE, "status": "WEIRD"},
        {k: v for k, v in POST_RESPONSE.items() if k != "symbol"},
    ],
)
def test_wrong_shapes_raise_payload_error(payload: object) -> None:
    with pytest.raises(parsing.PayloadError):
        parsing.update_from_order(payload)


def test_string_event_time_is_accepted() -> None:
    assert parsing.integer({"E": "1736996475556"}, "E") == 1736996475556
