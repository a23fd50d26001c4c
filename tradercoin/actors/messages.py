"""What goes in and out of a user actor: mailbox messages, their replies, errors, statuses.

Every message is a frozen dataclass. A message that wants an answer carries ``reply``, the send
side of a one-slot memory channel; the actor sends exactly one :class:`outcome.Outcome` on it
(the value, or the error to raise in the caller) and closes it. A caller that sees the channel
closed without an answer learns that the actor went away mid-request
(:class:`ActorUnavailable`). :func:`ask` is the caller's half of that exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias, TypeVar

import outcome
import trio

from tradercoin.config import PollPolicy
from tradercoin.orders import ExchangeUpdate, Order, OrderType, Side, TimeInForce

__all__ = [
    "AccountChanged",
    "ActorState",
    "ActorStatus",
    "ActorUnavailable",
    "AttachSession",
    "BudgetGranted",
    "CancelAll",
    "CancelOrder",
    "ChangeLeverage",
    "CredentialsChanged",
    "DetachSession",
    "GetAccount",
    "GovernorStatistics",
    "Message",
    "NoExchangeKeys",
    "OrderNotFoundError",
    "OrderRejected",
    "PlaceOrder",
    "PlaceOrderRequest",
    "PlaceResolved",
    "Reply",
    "SetPollPolicy",
    "Stop",
    "StreamChanged",
    "StreamState",
    "StreamUpdates",
    "SupervisorStatistics",
    "Wake",
    "ask",
]

T = TypeVar("T")
Reply: TypeAlias = trio.MemorySendChannel[outcome.Outcome[T]]

ActorState = Literal["starting", "running", "parked", "backoff", "stopped"]
StreamState = Literal["off", "connecting", "healthy", "down"]


# ---------------------------------------------------------------- errors seen by callers


class OrderRejected(Exception):
    """The exchange refused a place or cancel; ``code``/``message`` are the exchange's words."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.code = code
        self.message = message


class ActorUnavailable(Exception):
    """The user's actor cannot take the request now (parked, restarting, stopped, overloaded,
    exchange paused, this account placing too fast); ``reason`` says which in a sentence,
    ``retry_after`` (seconds) when to try again if known."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class NoExchangeKeys(ActorUnavailable):
    """The user has no exchange keys, so no actor anywhere (the HTTP layer answers 409)."""


class OrderNotFoundError(LookupError):
    """No such order for this user (unknown id, or another user's order)."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"order {order_id} not found")
        self.order_id = order_id


# ---------------------------------------------------------------- caller -> actor


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """What a user asks to place; validated by the HTTP layer, sent as is.

    ``client_order_id`` (Binance's ``newClientOrderId`` pattern) makes the place idempotent:
    when the user already has an order with it, that order is the answer and nothing is sent
    to the exchange. Without one, the actor makes a fresh id.
    """

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Answered with the stored :class:`~tradercoin.orders.Order`."""

    request: PlaceOrderRequest
    reply: Reply[Order]


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Answered with the order as it stands after the cancel."""

    order_id: int
    reply: Reply[Order]


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every open order of ``symbol`` (``DELETE allOpenOrders``); answered with how
    many of the user's pending orders of that symbol the cancel covered."""

    symbol: str
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class AttachSession:
    """Register ``send`` as a session; replay events after ``since`` first (if given)."""

    send: trio.MemorySendChannel[dict[str, Any]]
    since: int | None
    reply: Reply[int]


@dataclass(frozen=True, slots=True)
class DetachSession:
    session_id: int
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class SetPollPolicy:
    """Use ``policy`` from the next deadline on (the stored policy is already updated)."""

    policy: PollPolicy


@dataclass(frozen=True, slots=True)
class CredentialsChanged:
    """The user's keys were rotated: reload them, leave the parked state, poll now."""


@dataclass(frozen=True, slots=True)
class GetAccount:
    """Read the account (balances, positions) from the exchange; answers its wire JSON."""

    reply: Reply[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ChangeLeverage:
    """Set the initial leverage of ``symbol`` at the exchange; answers
    ``{"symbol", "leverage", "max_notional_value"}`` (:class:`OrderRejected` if refused)."""

    symbol: str
    leverage: int
    reply: Reply[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Wake:
    """Poll now instead of at the next deadline."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish the current step and return from ``run``."""


# ---------------------------------------------------------------- an actor's own tasks -> it


@dataclass(frozen=True, slots=True)
class StreamUpdates:
    """Order snapshots read from the user-data stream, to merge at once."""

    updates: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class StreamChanged:
    """The stream became healthy or went down (``reason`` for the log)."""

    state: StreamState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """An ``ACCOUNT_UPDATE`` read from the user-data stream, to push to the sessions."""

    update: Any


@dataclass(frozen=True, slots=True)
class PlaceResolved:
    """A place whose outcome was unknown has been looked up by client id: ``update`` is the
    exchange's view (``None``: still unknown, polls settle it); ``reply`` is the waiting
    caller's."""

    order: Order
    update: ExchangeUpdate | None
    reply: Reply[Order]


@dataclass(frozen=True, slots=True)
class BudgetGranted:
    """The governor let the actor's queued poll spend ``weight`` (already recorded)."""

    weight: int


Message: TypeAlias = (
    PlaceOrder
    | CancelOrder
    | AttachSession
    | DetachSession
    | SetPollPolicy
    | CredentialsChanged
    | Wake
    | Stop
    | StreamUpdates
    | StreamChanged
    | BudgetGranted
    | CancelAll
    | PlaceResolved
    | GetAccount
    | ChangeLeverage
    | AccountChanged
)


async def ask(mailbox: trio.MemorySendChannel[Message], make: Callable[[Reply[T]], Message]) -> T:
    """Send ``make(reply)`` without waiting for room, then wait for the one answer.

    Raises:
        ActorUnavailable: the mailbox is full or closed, or the actor closed the reply
            channel without answering (it crashed or was stopped mid-request).
        Whatever the actor put in the reply as an error (e.g. :class:`OrderRejected`).
    """
    reply_send, reply_receive = trio.open_memory_channel[outcome.Outcome[T]](1)
    with reply_receive:
        try:
            mailbox.send_nowait(make(reply_send))
        except trio.WouldBlock:
            raise ActorUnavailable("actor overloaded, try again") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorUnavailable("actor stopped") from None
        try:
            answer = await reply_receive.receive()
        except trio.EndOfChannel:
            raise ActorUnavailable("actor went away during the request") from None
    return answer.unwrap()


# ---------------------------------------------------------------- statuses


@dataclass(frozen=True, slots=True)
class ActorStatus:
    """One actor as an operator sees it; times are epoch ms (``None`` when not yet/never)."""

    user_id: int
    state: ActorState
    pending_orders: int
    last_poll: int | None
    next_poll: int | None
    stream_state: StreamState
    error_count: int
    last_error: str | None
    effective_interval: float | None
    sessions: int = 0
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    actors: int
    running: int
    parked: int
    backoff: int
    sessions: int
    restarts: int
    pending_orders: int


@dataclass(frozen=True, slots=True)
class GovernorStatistics:
    """The shared weight budget. ``paused_until``/``banned_until`` are epoch ms or ``None``."""

    budget_per_minute: int
    limit_per_minute: int
    used_weight: int
    reported_weight: int | None
    paused_until: int | None
    banned_until: int | None
    demand_per_minute: float
    stretch_fast: float
    stretch_normal: float
    effective_intervals: dict[int, float]
    weight_spent: int
    waits: int
