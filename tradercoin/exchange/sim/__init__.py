"""A Binance USDⓈ-M futures simulator, faithful on the wire (reference §9).

In-process::

    sim = Simulator(clock=FixedEpochClock(...), seed=1)
    await nursery.start(sim.run)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app),
                             base_url="http://sim")
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws: ...

Over sockets: ``await nursery.start(serve_simulator, sim, "127.0.0.1", 0)`` returns a
:class:`SimAddress` (REST on one port, the user stream on the next), or ``tradercoin sim``.

Markets move by a seeded random walk on a one-second grid (idle when nothing could fill);
MARKET orders fill after ``market_fill_latency``; LIMIT orders fill when the mark crosses
them (at their price; at the mark when they cross on arrival), at most ``liquidity`` per
step. The PERCENT_PRICE band rejects aggressive limits only (BUY above mark*1.05, SELL below
mark*0.95). Self-trade prevention expires an account's own crossing orders
(EXPIRED_IN_MATCH); a reduce-only order needs a position to reduce (-2022).
``newOrderRespType=RESULT`` fills a MARKET order at once. ``volatility_scale=0`` freezes
prices (then only :meth:`Simulator.set_price` and :meth:`Simulator.fill` move things), which
is what most tests want; BTCUSDT starts at 50000.00, ETHUSDT 3000, BNBUSDT 600, SOLUSDT 150,
XRPUSDT 0.6.

Test hooks: :meth:`Simulator.set_price`, :meth:`~Simulator.fill`, :meth:`~Simulator.inject`
(a :class:`Fault` for a path and/or an account, ``count`` times or until
:meth:`~Simulator.clear_faults`), :meth:`~Simulator.orders` (the exchange's truth),
:meth:`~Simulator.statistics`; the same over ``/sim/admin/...`` (see ``admin.py``).
"""

from tradercoin.exchange.sim.connrules import ConnectionLimits, ConnectionRuleStatistics
from tradercoin.exchange.sim.faults import Fault, FaultKind
from tradercoin.exchange.sim.markets import DEFAULT_SYMBOLS, SymbolSpec
from tradercoin.exchange.sim.ratelimit import Limits
from tradercoin.exchange.sim.server import SimAddress, serve_simulator
from tradercoin.exchange.sim.simulator import OrderTruth, SimStatistics, Simulator
from tradercoin.exchange.sim.stream import StreamConfig

__all__ = [
    "DEFAULT_SYMBOLS",
    "ConnectionLimits",
    "ConnectionRuleStatistics",
    "Fault",
    "FaultKind",
    "Limits",
    "OrderTruth",
    "SimAddress",
    "SimStatistics",
    "Simulator",
    "StreamConfig",
    "SymbolSpec",
    "serve_simulator",
]
