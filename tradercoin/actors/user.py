"""UserActor: one user's keys, exchange view, pending orders and poll loop.

The actor is the only holder of the user's decrypted keys and of its exchange client, and the
only writer of that user's orders. Everything else talks to it through its mailbox (see
:mod:`tradercoin.actors.messages`). Its loop waits for the next poll deadline or a message,
whichever comes first, and handles one thing at a time, so a place, a poll and a stream event
never race each other.

Poll (``strategy="batched"``): one ``GET openOrders`` per symbol with pending orders, then
``GET order`` only for pending orders that left the open set, plus ``userTrades`` for those
that filled. ``strategy="per-order"`` is the seed's worker (``GET order`` for every pending
order every interval), kept only as the benchmark's baseline.

Scheduling: the first poll after idling falls on the actor's phase of the interval (actors
spread out); each next one comes one interval (policy, fast orders, stream, governor stretch
as in force then) after the end of the last. A cycle pays its planned weight up front; when the
budget is spent, a helper task queues for it at the governor (first come, first served) while
the actor keeps serving its mailbox, so a stream event or a place never waits behind a budget.

Error handling: exchange errors during a poll are counted and retried at the next deadline;
429/418 go to the governor, which pauses everyone; bad keys park the actor and alert the
user's sessions until the keys change. Anything else (a bug, a store failure) escapes
:meth:`UserActor.run` and the supervisor restarts the actor with back-off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import outcome
import trio

from tradercoin.actors import account
from tradercoin.actors.governor import Demand, RateGovernor
from tradercoin.actors.messages import (
    AccountChanged,
    ActorState,
    ActorUnavailable,
    AttachSession,
    BudgetGranted,
    CancelOrder,
    CredentialsChanged,
    DetachSession,
    GetAccount,
    Message,
    OrderNotFoundError,
    OrderRejected,
    PlaceOrder,
    PlaceOrderRequest,
    Reply,
    SetPollPolicy,
    Stop,
    StreamChanged,
    StreamState,
    StreamUpdates,
    Wake,
)
from tradercoin.actors.sessions import Sessions
from tradercoin.clock import WallClock
from tradercoin.config import PollPolicy
from tradercoin.exchange import protocol as xp
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    RateLimited,
    UnknownOutcome,
)
from tradercoin.orders import (
    ExchangeUpdate,
    Order,
    OrderChange,
    OrderEvent,
    mark_rejected,
    mark_vanished,
    merge,
    new_order,
)

__all__ = ["ActorConfig", "ActorStatistics", "ActorStore", "UserActor", "next_tick"]

log = logging.getLogger(__name__)

Strategy = Literal["batched", "per-order"]
StreamRunner = Callable[..., Awaitable[None]]


class ActorStore(Protocol):
    """What an actor needs of :class:`tradercoin.store.Store`."""

    async def get_credentials(self, user_id: int) -> xp.Credentials | None: ...
    async def get_poll_policy(self, user_id: int) -> PollPolicy | None: ...
    async def pending_orders(self, user_id: int) -> list[Order]: ...
    async def get_order(self, user_id: int, order_id: int) -> Order | None: ...
    async def apply(self, changes: Sequence[OrderChange]) -> list[OrderEvent]: ...
    async def events_since(self, user_id: int, seq: int) -> list[OrderEvent]: ...
    async def latest_seq(self, user_id: int) -> int: ...


class AccountFactory(Protocol):
    """What an actor needs of :class:`tradercoin.exchange.client.BinanceFutures`."""

    def for_account(self, creds: xp.Credentials) -> Any: ...


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """Settings every actor shares (built once by the supervisor)."""

    poll_defaults: PollPolicy = dataclasses.field(default_factory=PollPolicy)
    strategy: Strategy = "batched"
    stream: StreamRunner | None = None
    vanish_confirmations: int = 3
    resolve_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    mailbox_size: int = 64


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
    polls: int
    errors: int
    cycle_weight: float
    waiting_for_budget: bool
    sessions: int


class _NoRoom(Exception):
    """A poll's request found the weight budget spent: the cycle is deferred."""

    def __init__(self, weight: int) -> None:
        super().__init__(f"no room for weight {weight}")
        self.weight = weight


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


class UserActor:
    """The actor of user ``user_id``. Created and run by the supervisor only.

    Args:
        mailbox: the receive side of the user's mailbox (the supervisor keeps it across
            restarts); ``inbox`` a send clone of it, for the stream task.
        sessions: the user's sessions (the supervisor keeps them across restarts).
        phase: in [0, 1): where in each interval this actor polls (see :func:`next_tick`).
    """

    def __init__(
        self,
        user_id: int,
        *,
        store: ActorStore,
        exchange: AccountFactory,
        governor: RateGovernor,
        clock: WallClock,
        config: ActorConfig,
        mailbox: trio.MemoryReceiveChannel[Message],
        inbox: trio.MemorySendChannel[Message],
        sessions: Sessions,
        phase: float = 0.0,
    ) -> None:
        self.user_id = user_id
        self._store = store
        self._exchange = exchange
        self._governor = governor
        self._clock = clock
        self._config = config
        self._mailbox = mailbox
        self._inbox = inbox
        self._sessions = sessions
        self._phase = phase
        self._client: Any = None
        self._policy = config.poll_defaults
        self._pending: dict[int, Order] = {}
        self._by_client_id: dict[str, int] = {}
        self._missing: dict[int, int] = {}
        self._next_at = math.inf  # trio time of the next poll, fixed when it is scheduled
        self._queued = False  # a task waits in the governor's queue for this actor's poll
        self._polling = False
        self._prepaid = 0  # weight a cycle paid for up front and has not used yet
        self._unsettled: set[int] = set()  # left the open set, not yet asked about
        self._spent_this_cycle = 0
        self._cycle_weight = 0.0
        self._poll_now = False
        self._stopping = False
        self._stream_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        # status, read by the supervisor
        self.state: ActorState = "starting"
        self.stream_state: StreamState = "off"
        self.last_poll: int | None = None
        self.error_count = 0
        self.last_error: str | None = None
        self.polls = 0

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load keys, policy and pending orders, catch sessions up, then serve until stopped.

        Calls ``task_status.started()`` once keys are decrypted and the state is loaded.
        Returns when told to :class:`Stop` or when the mailbox is closed.

        Raises:
            LookupError: the user has no credentials any more.
        """
        creds = await self._store.get_credentials(self.user_id)
        if creds is None:
            raise LookupError(f"user {self.user_id} has no exchange credentials")
        self._policy = await self._store.get_poll_policy(self.user_id) or self._policy
        for order in await self._store.pending_orders(self.user_id):
            self._remember(order)
        await self._catch_up_sessions()
        self._schedule()
        self.state = "running"
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._use_credentials(creds)
            task_status.started()
            log.info("user %d actor started: %d pending orders", self.user_id, len(self._pending))
            await self._serve()
            nursery.cancel_scope.cancel()
        self._governor.set_demand(self.user_id, None)
        self.state = "stopped"

    async def _serve(self) -> None:
        """The loop: a message, or a poll when the deadline comes first."""
        while not self._stopping:
            message: Message | None = None
            with trio.move_on_at(self.next_deadline()):
                try:
                    message = await self._mailbox.receive()
                except trio.EndOfChannel:
                    return
            if message is None:
                await self._poll_when_room()
            else:
                await self._handle(message)

    async def _poll_when_room(self) -> None:
        """Poll with the cycle's planned weight paid up front. When the governor has no room
        for it, a helper task queues for it (first come, first served) while the actor
        keeps serving messages (stream events, places); :class:`BudgetGranted` resumes."""
        weight = self._planned_weight()
        if self._governor.try_spend(weight):
            await self._poll_prepaid(weight)
        elif not self._queued and self._nursery is not None:
            self._queued = True
            self._nursery.start_soon(self._queue_for_budget, weight)

    async def _queue_for_budget(self, weight: int) -> None:
        await self._governor.spend(weight)
        await self._inbox.send(BudgetGranted(weight))

    async def _poll_prepaid(self, weight: int) -> None:
        self._queued = False
        if self.state == "parked" or not self._pending:
            return  # things changed while the budget was awaited
        self._prepaid = weight
        await self.poll()

    async def _handle(self, message: Message) -> None:
        match message:
            case PlaceOrder(request, reply):
                await self._answer(reply, self._place, request)
            case CancelOrder(order_id, reply):
                await self._answer(reply, self._cancel, order_id)
            case AttachSession(send, since, reply):
                await self._answer(reply, self._attach, send, since)
            case DetachSession(session_id, reply):
                await self._answer(reply, self._detach, session_id)
            case SetPollPolicy(policy):
                self._policy = policy
                log.info("user %d poll policy now %s", self.user_id, policy)
            case CredentialsChanged():
                await self._reload_credentials()
            case Wake():
                self._poll_now = True
            case Stop():
                self._stopping = True
            case StreamUpdates(updates):
                await self._on_stream_updates(updates)
            case StreamChanged(state, reason):
                self._on_stream_changed(state, reason)
            case BudgetGranted(weight):
                await self._poll_prepaid(weight)
            case GetAccount(reply):
                await self._answer(reply, self._read_account)
            case AccountChanged(update):
                self._sessions.send_all(account.update_message(update))

    async def _answer(
        self, reply: Reply, handler: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Run ``handler`` and send its result or its caller-facing error on ``reply``.

        Other exceptions escape (the actor crashes); closing ``reply`` tells the caller.
        """
        with reply:
            try:
                result: outcome.Outcome[Any] = outcome.Value(await handler(*args))
            except (OrderRejected, ActorUnavailable, OrderNotFoundError) as exc:
                result = outcome.Error(exc)
            with contextlib.suppress(trio.BrokenResourceError, trio.WouldBlock):
                reply.send_nowait(result)  # fails only when the caller gave up waiting

    # ------------------------------------------------------------ scheduling

    def _base_interval(self) -> float:
        if self.stream_state == "healthy":
            return self._policy.reconcile_interval
        return self._policy.fast_interval if self._has_fast() else self._policy.interval

    def _has_fast(self) -> bool:
        limit = self._policy.fast_notional
        return any((n := o.notional) is not None and n >= limit for o in self._pending.values())

    def effective_interval(self) -> float:
        """The interval in force now: the policy's, stretched by the governor."""
        fast = self._has_fast() and self.stream_state != "healthy"
        return self._governor.effective_interval(self._base_interval(), fast=fast)

    def next_deadline(self) -> float:
        """Trio time of the next poll (``inf`` when nothing is pending or the actor is parked)."""
        if self.state == "parked" or not self._pending:
            return math.inf
        if self._queued:
            return math.inf  # a poll waits for its budget; BudgetGranted starts it
        due = trio.current_time() if self._poll_now else self._next_at
        return max(due, self._governor.paused_until)

    def _schedule(self) -> None:
        """Fix the first poll after idling: the next tick of this actor's phase grid, so that
        actors spread over the interval. Later changes apply from that deadline on."""
        self._next_at = next_tick(trio.current_time(), self.effective_interval(), self._phase)

    def _schedule_next(self) -> None:
        """Fix the poll after this one: one interval (in force now) after its end.

        Not the grid: the stretched interval moves whenever any user's demand does, and a
        grid that keeps moving would put the next tick anywhere in (0, interval].
        """
        self._next_at = trio.current_time() + self.effective_interval()

    def _declare_demand(self) -> None:
        if not self._pending or self.state == "parked":
            self._governor.set_demand(self.user_id, None)
            return
        # what cycles really cost, fill fetches included
        weight = max(self._planned_weight(), self._cycle_weight)
        fast = self._has_fast() and self.stream_state != "healthy"
        self._governor.set_demand(self.user_id, Demand(weight, self._base_interval(), fast))

    def _planned_weight(self) -> int:
        """The weight a cycle pays up front: openOrders per symbol plus the settling of orders
        a budget-short cycle left unsettled (or, per-order, a GET per order)."""
        if self._config.strategy == "per-order":
            return len(self._pending) * GET_ORDER_WEIGHT
        symbols = len({o.symbol for o in self._pending.values()})
        unsettled = len(self._unsettled & self._pending.keys())
        return symbols * OPEN_ORDERS_WEIGHT + unsettled * (GET_ORDER_WEIGHT + USER_TRADES_WEIGHT)

    async def _spend(self, weight: int) -> None:
        """Get the governor's leave to spend ``weight`` and count it for this cycle.

        Places and cancels wait for it; a poll uses what it paid up front, then asks
        without waiting (:class:`_NoRoom`).
        """
        if not self._polling:
            await self._governor.spend(weight)
        elif self._prepaid >= weight:
            self._prepaid -= weight
        elif not self._governor.try_spend(weight):
            raise _NoRoom(weight)
        self._spent_this_cycle += weight

    def _note_cycle_weight(self) -> None:
        """Fold this cycle's weight into the running average that demand declares."""
        spent, self._spent_this_cycle = self._spent_this_cycle, 0
        self._cycle_weight += CYCLE_WEIGHT_SMOOTHING * (spent - self._cycle_weight)

    # ------------------------------------------------------------ orders in memory

    def _remember(self, order: Order) -> None:
        if order.id is None:
            return
        was_idle = not self._pending
        if order.status.terminal:
            self._pending.pop(order.id, None)
            self._by_client_id.pop(order.client_order_id, None)
            self._missing.pop(order.id, None)
        else:
            self._pending[order.id] = order
            self._by_client_id[order.client_order_id] = order.id
            if was_idle:
                self._schedule()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            user_id=self.user_id,
            state=self.state,
            stream_state=self.stream_state,
            pending_orders=len(self._pending),
            polls=self.polls,
            errors=self.error_count,
            cycle_weight=round(self._cycle_weight, 3),
            waiting_for_budget=self._queued,
            sessions=len(self._sessions),
        )

    def now(self) -> int:
        return self._clock.now_ms()

    async def _commit(self, changes: Sequence[OrderChange | None]) -> list[OrderEvent]:
        """Store ``changes`` (one batched transaction), update memory, push, log."""
        real = [c for c in changes if c is not None]
        if not real:
            return []
        events = await self._store.apply(real)
        for change, event in zip(real, events, strict=False):
            self._remember(event.order)
            before = "none" if change.before is None else change.before.status.value
            log.info(
                "user %d order %s %s -> %s",
                self.user_id,
                event.order.id,
                before,
                event.order.status.value,
            )
        delivered = self._sessions.push(events)
        if delivered:
            log.info(
                "notifications sent to user %d: %d events, %d deliveries",
                self.user_id,
                len(events),
                delivered,
            )
        self._declare_demand()
        return events

    async def _merge_one(self, order: Order, update: ExchangeUpdate) -> Order:
        events = await self._commit([merge(order, update, now=self.now())])
        return events[0].order if events else self._pending.get(order.id or 0, order)

    # ------------------------------------------------------------ place and cancel

    def _check_usable(self) -> None:
        if self.state == "parked":
            raise ActorUnavailable("the exchange rejected this user's API keys; update them")
        if self._governor.paused_until > trio.current_time():
            raise ActorUnavailable("the exchange's rate limit is in force; try again shortly")

    async def _place(self, request: PlaceOrderRequest) -> Order:
        """Save the order with a fresh client id, then send it; resolve unknown outcomes."""
        self._check_usable()
        change = new_order(
            user_id=self.user_id,
            client_order_id=new_client_order_id(),
            now=self.now(),
            **{f.name: getattr(request, f.name) for f in dataclasses.fields(request)},
        )
        [saved] = await self._commit([change])
        order = saved.order
        try:
            update = await self._client.place_order(_to_exchange(order))
        except ExchangeError as exc:
            update = await self._place_failed(order, exc)
        if update is None:
            return self._pending.get(order.id or 0, order)
        return await self._merge_one(order, update)

    async def _place_failed(self, order: Order, exc: ExchangeError) -> ExchangeUpdate | None:
        """Map a failed place: resolve an unknown outcome, or record why it did not happen."""
        if isinstance(exc, UnknownOutcome):
            return await self._resolve_unknown(order)
        reason = f"{exc.code}: {exc.msg}" if exc.code is not None else exc.msg
        await self._commit([mark_rejected(order, reason, now=self.now())])
        if isinstance(exc, InvalidRequest | OrderNotFound):
            raise OrderRejected(exc.code, exc.msg)  # the user's order, not an actor error
        self._note_error(exc)
        await self._on_exchange_error(exc)
        raise ActorUnavailable(f"the exchange did not take the order: {exc.msg}")

    async def _resolve_unknown(self, order: Order) -> ExchangeUpdate | None:
        """Ask for the order by client id until the exchange knows it; never place again.

        Returns ``None`` when it stays unknown: the order is left ``pending`` and polls (with
        their vanish confirmations) settle it.
        """
        for delay in self._config.resolve_delays:
            await trio.sleep(delay)
            try:
                return await self._get(order)
            except OrderNotFound:
                continue  # not visible yet, or never arrived
            except (RateLimited, IPBanned, InvalidCredentials) as exc:
                await self._on_exchange_error(exc)
                break
            except ExchangeError as exc:
                self._note_error(exc)
        log.warning(
            "user %d order %s: outcome unknown, left pending for polls to settle",
            self.user_id,
            order.id,
        )
        return None

    async def _get(self, order: Order, *, with_fills: bool = True) -> ExchangeUpdate:
        """``GET order`` by client id, plus ``userTrades`` when it has executed."""
        await self._spend(GET_ORDER_WEIGHT)
        update: ExchangeUpdate = await self._client.get_order(
            order.symbol, client_order_id=order.client_order_id
        )
        if with_fills and update.status.terminal and update.executed_qty > 0:
            await self._spend(USER_TRADES_WEIGHT)
            fills = await self._client.user_trades(order.symbol, order_id=update.exchange_order_id)
            update = dataclasses.replace(update, fills=tuple(fills))
        return update

    async def _find_order(self, order_id: int) -> Order:
        order = self._pending.get(order_id) or await self._store.get_order(self.user_id, order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    async def _cancel(self, order_id: int) -> Order:
        """Cancel through the exchange; a -2011 on an order that filled resolves to filled."""
        order = await self._find_order(order_id)
        if order.status.terminal:
            return order
        self._check_usable()
        try:
            await self._spend(CANCEL_WEIGHT)
            update = await self._client.cancel_order(
                order.symbol, client_order_id=order.client_order_id
            )
        except OrderNotFound as exc:
            update = await self._cancel_missed(order, exc)
        except InvalidRequest as exc:
            raise OrderRejected(exc.code, exc.msg) from None
        except ExchangeError as exc:
            self._note_error(exc)
            await self._on_exchange_error(exc)
            raise ActorUnavailable(f"the exchange did not take the cancel: {exc.msg}") from None
        return await self._merge_one(order, update)

    async def _cancel_missed(self, order: Order, exc: OrderNotFound) -> ExchangeUpdate:
        """The order is not open any more: learn what it became (filled, most likely).

        Raises:
            ActorUnavailable: the exchange does not know it either (retry later).
        """
        try:
            return await self._get(order)
        except OrderNotFound:
            # pending here, unknown there: not visible yet (a place just acknowledged), or
            # gone, which polls confirm and record; either way the answer is "not now"
            raise ActorUnavailable("the exchange does not show this order yet; try again") from None
        except ExchangeError as inner:
            self._note_error(inner)
            await self._on_exchange_error(inner)
            raise ActorUnavailable(f"cancel outcome unknown: {inner.msg}") from None

    async def _read_account(self) -> dict[str, Any]:
        """Balances and positions from the exchange (see :func:`account.snapshot`)."""
        self._check_usable()
        try:
            await self._spend(account.SNAPSHOT_WEIGHT)
            return await account.snapshot(self._client, self.now())
        except ExchangeError as exc:
            self._note_error(exc)
            await self._on_exchange_error(exc)
            raise ActorUnavailable("The exchange could not be asked for the account now.") from None

    # ------------------------------------------------------------ sessions

    async def _attach(self, send: trio.MemorySendChannel[dict[str, Any]], since: int | None) -> int:
        """Register a session; with ``since``, replay every event after it first.

        When events after ``since`` are no longer kept, the session gets a ``resync`` at the
        newest seq and goes live from there.
        """
        latest = await self._store.latest_seq(self.user_id)
        if since is None or since >= latest:
            return self._sessions.add(send, latest)
        session_id = self._sessions.add(send, since)
        events = await self._events_after(since)
        if not events or events[0].seq != since + 1:
            self._sessions.resync(session_id, latest)
            return session_id
        self._sessions.deliver(session_id, events)
        return session_id

    async def _events_after(self, seq: int) -> list[OrderEvent]:
        """Every stored event after ``seq``, page by page."""
        events: list[OrderEvent] = []
        while True:
            page = await self._store.events_since(self.user_id, seq)
            events.extend(page)
            if len(page) < EVENTS_PAGE:
                return events
            seq = page[-1].seq

    async def _detach(self, session_id: int) -> None:
        self._sessions.remove(session_id)

    async def _catch_up_sessions(self) -> None:
        """After a restart: push what sessions may have missed while the actor was down."""
        oldest = self._sessions.oldest_seq()
        if oldest is not None:
            self._sessions.push(await self._events_after(oldest))

    # ------------------------------------------------------------ poll

    async def poll(self) -> None:
        """One cycle: learn the state of every pending order, merge, store, push.

        A cycle that meets a full budget is abandoned and deferred until there is room, so
        the actor never sits in the governor's queue while messages wait.
        """
        started = trio.current_time()
        self._poll_now = False
        self.polls += 1
        pending = list(self._pending.values())
        log.info("user %d cycle start: checking %d pending orders", self.user_id, len(pending))
        try:
            changes = await self._poll_cycle(pending)
        except _NoRoom:  # only unplanned requests raise it, and _settle catches those
            log.info("user %d cycle cut short: the weight budget is spent", self.user_id)
            self._after_cycle()
            return
        except ExchangeError as exc:
            self._after_cycle()
            self._note_error(exc)
            await self._on_exchange_error(exc)
            return
        self._after_cycle()
        await self._commit(changes)
        log.info(
            "user %d cycle done in %.0fms",
            self.user_id,
            (trio.current_time() - started) * 1000,
        )

    async def _poll_cycle(self, pending: list[Order]) -> list[OrderChange | None]:
        self._polling = True
        try:
            if self._config.strategy == "per-order":
                return await self._poll_per_order(pending)
            return await self._poll_batched(pending)
        finally:
            self._polling = False
            self._prepaid = 0

    def _after_cycle(self) -> None:
        self.last_poll = self.now()
        self._note_cycle_weight()
        self._declare_demand()
        self._schedule_next()

    async def _poll_batched(self, pending: list[Order]) -> list[OrderChange | None]:
        seen: dict[str, ExchangeUpdate] = {}
        for symbol in sorted({o.symbol for o in pending}):
            await self._spend(OPEN_ORDERS_WEIGHT)
            for update in await self._client.open_orders(symbol):
                seen[update.client_order_id] = update
        now = self.now()
        changes: list[OrderChange | None] = []
        for order in pending:
            update = seen.get(order.client_order_id)
            if update is not None:
                self._missing.pop(order.id or 0, None)
                changes.append(merge(order, update, now=now))
            else:
                changes.append(await self._settle(order, with_fills=True))
        return changes

    async def _poll_per_order(self, pending: list[Order]) -> list[OrderChange | None]:
        """The seed's worker: ``GET order`` for every pending order (benchmark baseline)."""
        return [await self._settle(order, with_fills=False) for order in pending]

    async def _settle(self, order: Order, *, with_fills: bool) -> OrderChange | None:
        """Ask for one order; count -2013 answers and mark it vanished once confirmed."""
        try:
            update = await self._get(order, with_fills=with_fills)
        except OrderNotFound:
            return self._vanish_check(order)
        except _NoRoom:
            self._unsettled.add(order.id or 0)  # the next cycle pays for it up front
            return None
        self._unsettled.discard(order.id or 0)
        self._missing.pop(order.id or 0, None)
        return merge(order, update, now=self.now())

    def _vanish_check(self, order: Order) -> OrderChange | None:
        key = order.id or 0
        count = self._missing[key] = self._missing.get(key, 0) + 1
        needed = self._config.vanish_confirmations
        if count < needed:
            return None
        reason = f"the exchange no longer knows this order (-2013, {needed} confirmations)"
        return mark_vanished(order, reason, now=self.now())

    # ------------------------------------------------------------ stream

    def _start_stream(self) -> None:
        runner = self._config.stream
        if runner is None or self._nursery is None:
            return
        self._stream_scope = scope = trio.CancelScope()
        self.stream_state = "connecting"
        self._nursery.start_soon(self._run_stream, runner, self._client, scope)

    async def _run_stream(self, runner: StreamRunner, client: Any, scope: trio.CancelScope) -> None:
        with scope:
            await runner(client, user_id=self.user_id, sink=self._inbox)

    def _stop_stream(self) -> None:
        if self._stream_scope is not None:
            self._stream_scope.cancel()
            self._stream_scope = None
        self._on_stream_changed("off", "stopped")

    def _on_stream_changed(self, state: StreamState, reason: str) -> None:
        was = self.stream_state
        self.stream_state = state
        if was == state:
            return
        log.info("user %d stream %s -> %s %s", self.user_id, was, state, reason)
        if "healthy" in (was, state) and state != "off":
            self._poll_now = True  # reconcile what a drop, or the time before, may hide
        self._declare_demand()

    async def _on_stream_updates(self, updates: tuple[Any, ...]) -> None:
        now = self.now()
        changes: list[OrderChange | None] = []
        for update in updates:
            order_id = self._by_client_id.get(update.client_order_id)
            order = None if order_id is None else self._pending.get(order_id)
            if order is not None:
                changes.append(merge(order, update, now=now))
        await self._commit(changes)

    # ------------------------------------------------------------ errors and keys

    def _note_error(self, exc: ExchangeError) -> None:
        self.error_count += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("user %d exchange error: %s", self.user_id, self.last_error)

    async def _on_exchange_error(self, exc: ExchangeError) -> None:
        if isinstance(exc, RateLimited):
            self._governor.rate_limited(exc.retry_after)
        elif isinstance(exc, IPBanned):
            self._governor.banned(exc.until)
        elif isinstance(exc, InvalidCredentials):
            self._park(exc)

    def _park(self, exc: InvalidCredentials) -> None:
        """Bad keys: stop polling and streaming, alert the user, wait for new keys."""
        if self.state == "parked":
            return
        self.state = "parked"
        self._stop_stream()
        self._declare_demand()
        log.warning("user %d parked: the exchange rejected the API keys (%s)", self.user_id, exc)
        self._sessions.send_all(
            {
                "type": "alert",
                "kind": "credentials_rejected",
                "code": exc.code,
                "message": "The exchange rejected your API keys. Update them to resume.",
            }
        )

    async def _reload_credentials(self) -> None:
        creds = await self._store.get_credentials(self.user_id)
        if creds is None:
            self._stopping = True
            return
        self._stop_stream()
        self.state = "running"
        self._poll_now = True
        self._use_credentials(creds)
        self._declare_demand()
        log.info("user %d credentials changed: resumed", self.user_id)

    def _use_credentials(self, creds: xp.Credentials) -> None:
        """Build the exchange view and start the stream; park when the keys are unusable."""
        try:
            self._client = self._exchange.for_account(creds)
        except InvalidCredentials as exc:
            self._park(exc)
            return
        self._start_stream()


def _to_exchange(order: Order) -> xp.PlaceOrder:
    return xp.PlaceOrder(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        price=order.price,
        time_in_force=order.time_in_force,
    )
