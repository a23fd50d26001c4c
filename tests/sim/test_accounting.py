"""Balances and positions that move with fills, against figures computed by hand.

Fees: maker 0.02 %, taker 0.05 %. Every account starts with 100,000 USDT at 20x leverage.
One script: buy 0.010 BTC at 49000 (maker), buy 0.020 at the 50000 mark (taker), sell 0.010
at 51000 (reduce), sell 0.050 at 51000 (close 0.020 and flip to a 0.030 short).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket
from click.testing import CliRunner

from tests.sim.conftest import EPOCH_MS, SignedClient
from tradercoin.cli import main
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator

D = Decimal


async def _market(client: SignedClient, side: str, quantity: str) -> dict[str, Any]:
    return await client.order(
        symbol="BTCUSDT", side=side, type="MARKET", quantity=quantity, newOrderRespType="RESULT"
    )


async def _json(client: SignedClient, path: str, **params: Any) -> Any:
    response = await client.signed("GET", path, **params)
    assert response.status_code == 200, response.text
    return response.json()


async def _risk(client: SignedClient) -> dict[str, Any]:
    rows = await _json(client, "/fapi/v3/positionRisk", symbol="BTCUSDT")
    assert len(rows) == 1
    row: dict[str, Any] = rows[0]
    return row


async def _open_long(sim: Simulator, client: SignedClient) -> None:
    """0.010 BTC filled at 49000 (maker), then 0.020 at the 50000 mark (taker)."""
    placed = await client.limit(price="49000", quantity="0.010")
    sim.fill("BTCUSDT", placed["orderId"])
    await _market(client, "BUY", "0.020")


async def _script(sim: Simulator, client: SignedClient) -> None:
    await _open_long(sim, client)
    sim.set_price("BTCUSDT", D("51000"))
    await _market(client, "SELL", "0.010")
    await _market(client, "SELL", "0.050")


async def test_entry_is_weighted_on_increase(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await _open_long(sim, client)
    account = sim.account(client.key)
    # fees 0.010 x 49000 x 0.0002 = 0.098 and 0.020 x 50000 x 0.0005 = 0.5
    assert account.balance == D("100000") - D("0.098") - D("0.5")
    risk = await _risk(client)
    # (0.010 x 49000 + 0.020 x 50000) / 0.030 = 49666.666666666..., kept to 8 places
    assert (risk["positionAmt"], risk["entryPrice"]) == ("0.030", "49666.66666667")
    # 0.030 x (50000 - 49666.66666667) = 9.9999999999 -> 10.00000000
    assert risk["unRealizedProfit"] == "10.00000000"
    # the open part paid 0.598 of fees: break-even = entry + 0.598 / 0.030
    assert risk["breakEvenPrice"] == "49686.60000000"
    trades = await _json(client, "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert [(t["commission"], t["realizedPnl"], t["maker"]) for t in trades] == [
        ("0.09800000", "0.00000000", True),
        ("0.50000000", "0.00000000", False),
    ]


async def test_reduce_keeps_entry_and_realizes(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await _open_long(sim, client)
    sim.set_price("BTCUSDT", D("51000"))
    await _market(client, "SELL", "0.010")
    risk = await _risk(client)
    assert (risk["positionAmt"], risk["entryPrice"]) == ("0.020", "49666.66666667")
    # realized (51000 - 49666.66666667) x 0.010 = 13.3333333333 -> 13.33333333; fee 0.255
    account = sim.account(client.key)
    assert account.balance == D("99999.402") + D("13.33333333") - D("0.255")
    trades = await _json(client, "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert (trades[-1]["realizedPnl"], trades[-1]["commission"]) == ("13.33333333", "0.25500000")


async def test_flip_closes_then_opens_at_the_fill(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await _script(sim, client)
    account = sim.account(client.key)
    # close 0.020: (51000 - 49666.66666667) x 0.020 = 26.66666667; fee 0.050 x 51000 x 0.0005
    wallet = D("99999.402") + D("13.33333333") - D("0.255") + D("26.66666667") - D("1.275")
    assert account.balance == wallet == D("100037.872")
    sim.set_price("BTCUSDT", D("50000"))
    risk = await _risk(client)
    assert (risk["positionAmt"], risk["entryPrice"]) == ("-0.030", "51000.00000000")
    assert risk["unRealizedProfit"] == "30.00000000"  # -0.030 x (50000 - 51000)
    assert risk["notional"] == "-1500.00000000"
    # the new short carries 0.030/0.050 of the flip's fee: 0.765, i.e. 25.5 per BTC
    assert risk["breakEvenPrice"] == "50974.50000000"
    assert (risk["positionInitialMargin"], risk["maintMargin"]) == ("75.00000000", "6.00000000")
    # Binance's one-way cross formula, short, no other position, bracket 1 (0.4 %, cum 0):
    # (WB + 0.030 x 51000) / (0.030 x 0.004 + 0.030)
    liquidation = (wallet + D("0.030") * 51000) / (D("0.030") * D("0.004") + D("0.030"))
    assert risk["liquidationPrice"] == f"{liquidation:.8f}" == "3372107.30411687"


async def test_account_and_balance_totals(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await _script(sim, client)
    sim.set_price("BTCUSDT", D("50000"))
    await client.limit(side="BUY", price="49000", quantity="0.050")  # 0.030 of it reduces
    info = await _json(client, "/fapi/v3/account")
    # open buys 2450 notional, 1500 of which would only close the short: 950 / 20 = 47.5
    assert info["totalOpenOrderInitialMargin"] == "47.50000000"
    assert info["totalPositionInitialMargin"] == "75.00000000"
    assert info["totalInitialMargin"] == "122.50000000"
    assert info["totalWalletBalance"] == "100037.87200000"
    assert info["totalUnrealizedProfit"] == "30.00000000"
    assert info["totalMarginBalance"] == "100067.87200000"
    assert info["availableBalance"] == "99945.37200000"  # 100067.872 - 122.5
    assert info["maxWithdrawAmount"] == "99915.37200000"  # the wallet's part: 100037.872 - 122.5
    assert info["assets"][0]["walletBalance"] == "100037.87200000"
    [usdt] = await _json(client, "/fapi/v3/balance")
    assert (usdt["balance"], usdt["crossUnPnl"], usdt["availableBalance"]) == (
        "100037.87200000",
        "30.00000000",
        "99945.37200000",
    )
    risk = await _risk(client)
    assert (risk["bidNotional"], risk["askNotional"]) == ("2450.00000000", "0.00000000")


async def test_leverage_changes_margin_and_is_checked(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await _market(client, "BUY", "0.100")  # 5000 notional at the 50000 mark
    answer = await client.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=125)
    assert answer.json() == {"leverage": 125, "maxNotionalValue": "50000", "symbol": "BTCUSDT"}
    assert (await _risk(client))["initialMargin"] == "40.00000000"  # 5000 / 125
    for bad in (0, 126):
        refused = await client.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=bad)
        assert refused.json() == {"code": -4028, "msg": f"Leverage {bad} is not valid"}
    missing = await client.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT")
    assert missing.json()["code"] == -1102
    # 125x allows 50,000 of notional: 5000 held + 0.910 x 50000 = 50500 is over
    too_big = await client.signed(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.910"
    )
    assert too_big.json() == {
        "code": -2027,
        "msg": "Exceeded the maximum allowable position at current leverage.",
    }
    config = await _json(client, "/fapi/v1/symbolConfig", symbol="BTCUSDT")
    assert config == [
        {
            "symbol": "BTCUSDT",
            "marginType": "CROSSED",
            "isAutoAddMargin": False,
            "leverage": 125,
            "maxNotionalValue": "50000",
        }
    ]


async def test_margin_insufficient_for_a_small_wallet(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: Any
) -> None:
    key, secret = sim.create_account(balance=D("100"))
    client = SignedClient(http, sim, key, secret)
    # 0.050 x 49000 / 20 = 122.5 > 100
    refused = await client.signed(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
        timeInForce="GTC", price="49000", quantity="0.050",
    )  # fmt: skip
    assert refused.json() == {"code": -2019, "msg": "Margin is insufficient."}
    assert sim.orders(key) == []
    await client.limit(price="49000", quantity="0.040")  # 98 <= 100
    [usdt] = await _json(client, "/fapi/v3/balance")
    assert usdt["availableBalance"] == "2.00000000"


async def test_leverage_brackets_shape(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    one = await _json(client, "/fapi/v1/leverageBracket", symbol="BTCUSDT")
    assert one["symbol"] == "BTCUSDT"
    assert one["brackets"][:2] == [
        {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
         "maintMarginRatio": 0.004, "cum": 0.0},
        {"bracket": 2, "initialLeverage": 100, "notionalCap": 250000, "notionalFloor": 50000,
         "maintMarginRatio": 0.005, "cum": 50.0},
    ]  # fmt: skip
    every = await _json(client, "/fapi/v1/leverageBracket")
    assert [b["symbol"] for b in every] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    assert every[2]["brackets"][0]["initialLeverage"] == 75


async def _next(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await ws.get_message())
    return message


async def test_account_update_matches_rest_after_each_fill(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    listen_key = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={listen_key}") as ws:
        placed = await client.limit(price="49000", quantity="0.010")
        new = await _next(ws)
        assert (new["o"]["x"], new["o"]["b"], new["o"]["a"]) == ("NEW", "490", "0")
        sim.fill("BTCUSDT", placed["orderId"])
        await _check_events(client, [await _next(ws) for _ in range(2)])
        sim.set_price("BTCUSDT", D("51000"))
        for side, quantity in (("BUY", "0.020"), ("SELL", "0.010"), ("SELL", "0.050")):
            await _market(client, side, quantity)
            await _check_events(client, [await _next(ws) for _ in range(3)])


async def _check_events(client: SignedClient, events: list[dict[str, Any]]) -> None:
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in events]
    update = next(e for e in events if e["e"] == "ACCOUNT_UPDATE")
    trade = next(e for e in events if e.get("o", {}).get("x") == "TRADE")
    assert ("ACCOUNT_UPDATE", None) in kinds
    assert trade["o"]["b"] == "0" and trade["o"]["a"] == "0"
    assert update["a"]["m"] == "ORDER"
    [balance] = update["a"]["B"]
    [position] = update["a"]["P"]
    [usdt] = await _json(client, "/fapi/v3/balance")
    assert (balance["a"], balance["wb"], balance["cw"]) == (
        "USDT",
        usdt["balance"],
        usdt["balance"],
    )
    risk = await _risk(client)
    assert position["s"] == "BTCUSDT" and position["ps"] == "BOTH"
    assert (position["pa"], position["ep"], position["bep"], position["up"]) == (
        risk["positionAmt"],
        risk["entryPrice"],
        risk["breakEvenPrice"],
        risk["unRealizedProfit"],
    )


async def test_a_trade_between_two_accounts_moves_both_once(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient, http: Any
) -> None:
    key, secret = sim.create_account()
    other = SignedClient(http, sim, key, secret)
    await client.limit(side="SELL", price="50100", quantity="0.010")
    await other.limit(side="BUY", price="50100", quantity="0.010")
    seller, buyer = sim.account(client.key), sim.account(key)
    # one trade at the resting price: maker 0.02 %, taker 0.05 % of 501
    assert seller.balance == D("100000") - D("0.1002")
    assert buyer.balance == D("100000") - D("0.2505")
    assert (seller.positions["BTCUSDT"].amount, buyer.positions["BTCUSDT"].amount) == (
        D("-0.010"),
        D("0.010"),
    )
    assert seller.positions["BTCUSDT"].entry_price == buyer.positions["BTCUSDT"].entry_price
    ticker = (await http.get("/fapi/v1/ticker/24hr?symbol=BTCUSDT")).json()
    assert (ticker["volume"], ticker["count"], ticker["quoteVolume"]) == ("0.010", 1, "501.00")


async def test_starting_balance_is_configurable(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), starting_balance=D("2500.5"))
    await nursery.start(sim.run)
    transport = httpx.ASGITransport(app=sim.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        made = (await http.post("/sim/admin/accounts", json={"balance": "750"})).json()
        bad = await http.post("/sim/admin/accounts", json={"balance": "-1"})
        assert bad.status_code == 400
        default_key, default_secret = sim.create_account()
        for key, secret, wallet in (
            (made["api_key"], made["api_secret"], "750.00000000"),
            (default_key, default_secret, "2500.50000000"),
        ):
            [usdt] = await _json(SignedClient(http, sim, key, secret), "/fapi/v3/balance")
            assert usdt["balance"] == usdt["availableBalance"] == wallet


def test_cli_refuses_a_bad_starting_balance() -> None:
    result = CliRunner().invoke(main, ["sim", "--starting-balance", "lots"])
    assert result.exit_code == 1
    assert "--starting-balance must be a number of USDT" in result.output


async def test_leverage_change_reaches_the_stream(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    listen_key = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={listen_key}") as ws:
        await client.signed("POST", "/fapi/v1/leverage", symbol="ETHUSDT", leverage=7)
        event = await _next(ws)
    assert event == {
        "e": "ACCOUNT_CONFIG_UPDATE",
        "E": EPOCH_MS,
        "T": EPOCH_MS,
        "ac": {"s": "ETHUSDT", "l": 7},
    }


async def test_admin_account_is_the_exchange_record(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    http: httpx.AsyncClient,
) -> None:
    await _open_long(sim, client)
    truth = (await http.get(f"/sim/admin/account?api_key={client.key}")).json()
    assert D(truth["wallet"]) == sim.account(client.key).balance == D("99999.402")
    [position] = truth["positions"]
    assert (position["symbol"], D(position["amount"]), D(position["unrealized"])) == (
        "BTCUSDT",
        D("0.030"),
        D("10"),
    )
    unknown = await http.get("/sim/admin/account?api_key=nope")
    assert unknown.status_code == 400


async def test_order_events_carry_open_order_notionals(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    listen_key = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={listen_key}") as ws:
        buy = await client.limit(side="BUY", price="49000", quantity="0.030")
        await client.limit(side="SELL", price="51000.5", quantity="0.002")
        sim.fill("BTCUSDT", buy["orderId"], D("0.010"))
        await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")
        events = [await _next(ws) for _ in range(6)]
    seen = [(e["e"], e.get("o", {}).get("x"), e.get("o", {}).get("b"), e.get("o", {}).get("a"))
            for e in events]  # fmt: skip
    assert seen == [
        ("ORDER_TRADE_UPDATE", "NEW", "1470", "0"),  # 0.030 x 49000
        ("ORDER_TRADE_UPDATE", "NEW", "1470", "102.001"),  # + 0.002 x 51000.5
        ("ORDER_TRADE_UPDATE", "TRADE", "980", "102.001"),  # 0.020 x 49000 left
        ("ACCOUNT_UPDATE", None, None, None),
        ("ORDER_TRADE_UPDATE", "CANCELED", "0", "102.001"),
        ("ORDER_TRADE_UPDATE", "CANCELED", "0", "0"),
    ]


async def test_leverage_refused_beyond_the_position_or_the_margin(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    key, secret = sim.create_account(balance=D("100"))
    small = SignedClient(http, sim, key, secret)
    await _market(small, "BUY", "0.030")  # 1500 notional: 75 of margin at 20x
    # at 10x the position needs 150 of margin; the wallet holds 100 - 0.75 of fees
    refused = await small.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=10)
    assert refused.json() == {"code": -2019, "msg": "Margin is insufficient."}
    assert sim.account(key).leverage.get("BTCUSDT") is None
    key, secret = sim.create_account()
    big = SignedClient(http, sim, key, secret)
    await _market(big, "BUY", "1.100")  # 55,000 of notional: over 125x's 50,000
    over = await big.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=125)
    assert over.json()["code"] == -2027
    fine = await big.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=100)
    assert fine.json()["maxNotionalValue"] == "250000"


async def test_cancel_all_weight_and_errors(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    done = await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="ETHUSDT")
    assert done.json() == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert done.headers["x-mbx-used-weight-1m"] == "1"
    missing = await client.signed("DELETE", "/fapi/v1/allOpenOrders")
    assert missing.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    }
    unknown = await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="NOPEUSDT")
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}
    unsigned = await client.keyed("DELETE", "/fapi/v1/allOpenOrders", symbol="ETHUSDT")
    assert unsigned.json()["code"] == -1102


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fapi/v3/account"),
        ("GET", "/fapi/v2/account"),
        ("GET", "/fapi/v3/balance"),
        ("GET", "/fapi/v3/positionRisk"),
        ("GET", "/fapi/v1/leverageBracket"),
        ("GET", "/fapi/v1/symbolConfig"),
        ("POST", "/fapi/v1/leverage"),
    ],
)
async def test_account_routes_are_signed(
    autojump_clock: trio.testing.MockClock, client: SignedClient, method: str, path: str
) -> None:
    params = {"symbol": "BTCUSDT", "leverage": 5} if method == "POST" else {}
    forged = await client.signed(method, path, sign_with="not-the-secret", **params)
    assert (forged.status_code, forged.json()["code"]) == (400, -1022)
    stale = await client.signed(method, path, timestamp=EPOCH_MS - 60_000, **params)
    assert stale.json()["code"] == -1021
    keyless = await client.http.request(method, f"{path}?timestamp={EPOCH_MS}")
    assert (keyless.status_code, keyless.json()["code"]) == (401, -2014)
    good = await client.signed(method, path, **params)
    assert good.status_code == 200
