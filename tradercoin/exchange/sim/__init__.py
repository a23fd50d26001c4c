"""A Binance USDⓈ-M futures simulator, faithful on the wire (reference §9).

In-process::

    sim = Simulator(clock=FixedEpochClock(...), seed=1)
    await nursery.start(sim.run)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app),
                             base_url="http://sim")
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws: ...

Over sockets: ``await nursery.start(serve_simulator, sim, "127.0.0.1", 0)`` returns a
:class:`SimAddress` (REST on one port, the user stream on the next), or ``tradercoin sim``.

Markets move by a seeded random walk on a one-second grid (idle when nothing could fill).
One book per symbol holds every account's resting LIMIT orders: an order that crosses
resting orders of other accounts trades with them first (best price, then oldest, at the
resting price; both fills share the trade id, the resting side is the maker); whatever
remains trades against the rest of the market at the mark price. MARKET orders fill after
``market_fill_latency``; LIMIT orders rest until the mark crosses them (then fill at their
price; at the mark when they cross it on arrival), at most ``liquidity`` per step. The
PERCENT_PRICE band rejects aggressive limits only (BUY above mark*1.05, SELL below
mark*0.95). Self-trade prevention acts per account by the taker's mode (EXPIRE_MAKER by
default: an account's own resting order expires as EXPIRED_IN_MATCH instead of trading); a
reduce-only order needs a position to reduce (-2022). ``newOrderRespType=ACK`` (the default)
answers every order NEW with nothing executed, as Binance does; ``RESULT`` answers the state
at the answer (a MARKET order is then filled at once). ``volatility_scale=0`` freezes
prices (then only :meth:`Simulator.set_price`, :meth:`Simulator.fill` and other accounts'
orders move things), which is what most tests want; BTCUSDT starts at 50000.00, ETHUSDT 3000,
BNBUSDT 600, SOLUSDT 150, XRPUSDT 0.6.

Test hooks: :meth:`Simulator.set_price`, :meth:`~Simulator.fill`, :meth:`~Simulator.inject`
(a :class:`Fault` for a path and/or an account, ``count`` times or until
:meth:`~Simulator.clear_faults`), :meth:`~Simulator.statistics`; the same over
``/sim/admin/...`` (see ``admin.py``).

The exchange's record, the oracle for tests: :meth:`~Simulator.orders` (per order
:class:`OrderTruth`: order id, client order id, status, executed quantity, average price as
reported...), :meth:`~Simulator.trades` (an account's side of each trade, per symbol and
order: :class:`Trade` id, price, qty, commission, commission asset, realized PnL, maker),
:meth:`~Simulator.matches` (each trade between two accounts, as :class:`Match`).
"""

from tradercoin.exchange.sim.connrules import ConnectionLimits, ConnectionRuleStatistics
from tradercoin.exchange.sim.engine import Match, Trade
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
    "Match",
    "OrderTruth",
    "SimAddress",
    "SimStatistics",
    "Simulator",
    "StreamConfig",
    "SymbolSpec",
    "Trade",
    "serve_simulator",
]
