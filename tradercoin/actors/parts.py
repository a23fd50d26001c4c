"""The parts every user actor shares: what it needs of the store and the exchange, its
settings, request weights, statistics, and the small pure helpers of its schedule."""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import trio

from tradercoin.actors.messages import ActorState, StreamState
from tradercoin.config import PollPolicy
from tradercoin.exchange import protocol as xp
from tradercoin.exchange.errors import ExchangeError
from tradercoin.orders import Order, OrderChange, OrderEvent, OrderFill

__all__ = [
    "DEFERRED",
    "AccountFactory",
    "ActorConfig",
    "ActorStatistics",
    "ActorStore",
    "Deferred",
    "KeyRenewal",
    "NoRoom",
    "new_client_order_id",
    "next_tick",
]

StreamRunner = Callable[..., Awaitable[None]]
"""``await runner(client, user_id=..., sink=..., renew=...)`` in the actor's nursery."""


class KeyRenewal:
    """The actor's word to its stream runner: the listenKey is suspect (a poll found a change
    its stream never delivered), recreate it. Requests made before the runner takes one
    merge into one."""

    def __init__(self) -> None:
        self._asked = trio.Event()

    def request(self) -> None:
        self._asked.set()

    async def wait(self) -> None:
        """Return once a renewal was requested (at once if one is waiting), taking it."""
        await self._asked.wait()
        self._asked = trio.Event()


class ActorStore(Protocol):
    """What an actor needs of :class:`tradercoin.store.Store`."""

    async def get_credentials(self, user_id: int) -> xp.Credentials | None: ...
    async def get_poll_policy(self, user_id: int) -> PollPolicy | None: ...
    async def pending_orders(self, user_id: int) -> list[Order]: ...
    async def get_order(self, user_id: int, order_id: int) -> Order | None: ...
    async def find_order_by_client_id(self, user_id: int, client_order_id: str) -> Order | None: ...
    async def apply(
        self, changes: Sequence[OrderChange], fills: Sequence[OrderFill] = ()
    ) -> list[OrderEvent]: ...
    async def record_fills(self, fills: Sequence[OrderFill]) -> int: ...
    async def filled_by_order(
        self, user_id: int, order_ids: Sequence[int]
    ) -> dict[int, dict[int, Decimal]]: ...
    async def events_since(self, user_id: int, seq: int, limit: int = ...) -> list[OrderEvent]: ...
    async def latest_seq(self, user_id: int) -> int: ...


class AccountFactory(Protocol):
    """What an actor needs of :class:`tradercoin.exchange.client.BinanceFutures`."""

    def for_account(self, creds: xp.Credentials) -> xp.ExchangeClient: ...


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """Settings every actor shares (built once by the supervisor)."""

    poll_defaults: PollPolicy = dataclasses.field(default_factory=PollPolicy)
    stream: StreamRunner | None = None
    vanish_confirmations: int = 3
    vanish_after: float = 30.0  # seconds the -2013 answers must span (visibility delay)
    resolve_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    mailbox_size: int = 64
    # raises NotOwner unless this instance may act for the user now (a cluster's directory);
    # called before every exchange request and every store write
    fence: Callable[[int], None] = dataclasses.field(default_factory=lambda: unfenced)


def unfenced(user_id: int) -> None:
    """The fence of a single instance: it may always act."""


OPEN_ORDERS_WEIGHT = 1
GET_ORDER_WEIGHT = 1
USER_TRADES_WEIGHT = 5
CANCEL_WEIGHT = 1
EVENTS_PAGE = 1000  # the store's default page of events_since
TICK_EPSILON = 1e-6
CYCLE_WEIGHT_SMOOTHING = 0.2  # weight of the newest cycle in the running average


@dataclass(frozen=True, slots=True)
class ActorStatistics:
    user_id: int
    state: ActorState
    stream_state: StreamState
    pending_orders: int
    owed_orders: int
    polls: int
    errors: int
    request_failures: int
    places_refused_for_rate: int
    cycle_weight: float
    waiting_for_budget: bool
    sessions: int


class NoRoom(Exception):
    """A poll's request found the weight budget spent: the cycle is deferred."""

    def __init__(self, weight: int) -> None:
        super().__init__(f"no room for weight {weight}")
        self.weight = weight


class Deferred:
    """A request handler handed its reply to a child task, which answers later."""


DEFERRED = Deferred()


def next_tick(after: float, interval: float, phase: float) -> float:
    """The first instant later than ``after`` on the grid ``(phase + k) * interval``.

    Each actor has its own phase, so polls of many users spread over the interval instead
    of landing on one tick, and a poll that takes time does not shift the next one.
    """
    k = math.floor((after - phase * interval) / interval) + 1
    if (phase + k) * interval <= after + TICK_EPSILON:  # float rounding at a grid point
        k += 1
    return (phase + k) * interval  # always this one expression: equal ticks are equal floats


def new_client_order_id() -> str:
    """A fresh ``newClientOrderId`` (``tc`` + 24 hex digits, within Binance's pattern)."""
    return "tc" + secrets.token_hex(12)


def exchange_reason(exc: ExchangeError) -> str:
    return f"{exc.code}: {exc.msg}" if exc.code is not None else exc.msg
