"""UserActor: one user's keys, exchange view and poll loop, around a pure order book.

The actor is the only holder of the user's decrypted keys and of its exchange client, and the
only writer of that user's orders. Everything else talks to it through its mailbox (see
:mod:`tradercoin.actors.messages`). Its loop waits for the next poll deadline or a message,
whichever comes first, and handles one thing at a time, so a place, a poll and a stream event
never race each other. What the exchange's word means (merges, trades to record, orders gone)
is decided by :class:`~tradercoin.actors.book.OrderBook`; the actor does the I/O.

Poll: one ``GET openOrders`` per symbol with pending orders, then ``GET order`` only for
pending orders that left the open set (plus ``userTrades`` when their known trades do not add
up to what they executed), and ``userTrades`` for terminal orders still owed their trades.
The seed's per-order worker is the benchmark's baseline (``bench/baseline.py``).

Scheduling: the first poll after idling falls on the actor's phase of the interval (actors
spread out); each next one comes one interval (policy, fast orders, stream, governor stretch
as in force then) after the end of the last. A cycle pays its planned weight up front; when the
budget is spent, a helper task queues for it at the governor (first come, first served) while
the actor keeps serving its mailbox, so a stream event or a place never waits behind a budget.

A place whose outcome is unknown (5xx, timeout) is looked up by client id in a child task
that sleeps between queries and reports back through the mailbox (:class:`PlaceResolved`), so
the loop keeps serving stream events, cancels and sessions meanwhile; the caller waits for
that answer.

Error handling: exchange errors during a poll are counted and retried at the next deadline;
429/418 go to the governor, which pauses everyone; -1015 pauses only this account's places;
bad keys park the actor and alert the user's sessions until the keys change. A request never
crashes the actor: an unexpected error in a request handler fails that request (logged).
Anything else (a bug in a poll, a store failure) escapes :meth:`UserActor.run` and the
supervisor restarts the actor with back-off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import outcome
import trio

from tradercoin.actors import account
from tradercoin.actors.book import Folded
from tradercoin.actors.core import ActorCore
from tradercoin.actors.messages import (
    AccountChanged,
    ActorUnavailable,
    AttachSession,
    BudgetGranted,
    CancelAll,
    CancelOrder,
    ChangeLeverage,
    CredentialsChanged,
    DetachSession,
    GetAccount,
    Message,
    OrderNotFoundError,
    OrderRejected,
    PlaceOrder,
    PlaceOrderRequest,
    PlaceResolved,
    Reply,
    SetPollPolicy,
    Stop,
    StreamChanged,
    StreamUpdates,
    Wake,
)
from tradercoin.actors.parts import (
    CANCEL_WEIGHT,
    DEFERRED,
    GET_ORDER_WEIGHT,
    OPEN_ORDERS_WEIGHT,
    USER_TRADES_WEIGHT,
    AccountFactory,
    ActorConfig,
    ActorStatistics,
    ActorStore,
    Deferred,
    NoRoom,
    exchange_reason,
    new_client_order_id,
    next_tick,
)
from tradercoin.cluster.directory import NotOwner
from tradercoin.exchange import protocol as xp
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    OrderRateLimited,
    RateLimited,
    UnknownOutcome,
)
from tradercoin.metrics import observe_poll_cycle
from tradercoin.orders import (
    ExchangeUpdate,
    Order,
    OrderChange,
    OrderFill,
    mark_rejected,
    new_order,
)

__all__ = [
    "AccountFactory",
    "ActorConfig",
    "ActorStatistics",
    "ActorStore",
    "UserActor",
    "new_client_order_id",
    "next_tick",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class UserActor(ActorCore):
    """The actor of user ``user_id``. Created and run by the supervisor only.

    Args:
        mailbox: the receive side of the user's mailbox (the supervisor keeps it across
            restarts); ``inbox`` a send clone of it, for the actor's own tasks.
        sessions: the user's sessions (the supervisor keeps them across restarts).
        phase: in [0, 1): where in each interval this actor polls (see :func:`next_tick`).
    """

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load keys, policy, pending orders and their trades, catch sessions up, then serve
        until stopped.

        Calls ``task_status.started()`` once keys are decrypted and the state is loaded.
        Returns when told to :class:`Stop` or when the mailbox is closed.

        Raises:
            LookupError: the user has no credentials any more.
        """
        creds = await self._store.get_credentials(self.user_id)
        if creds is None:
            raise LookupError(f"user {self.user_id} has no exchange credentials")
        self._policy = await self._store.get_poll_policy(self.user_id) or self._policy
        pending = await self._store.pending_orders(self.user_id)
        trades = await self._store.filled_by_order(self.user_id, [o.id or 0 for o in pending])
        self._book.load(pending, trades)
        await self._catch_up_sessions()
        self._schedule()
        self.state = "running"
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._use_credentials(creds)
            task_status.started()
            log.info("user %d actor started: %d pending orders", self.user_id, len(self._book))
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
        if self.state == "parked" or not self._has_work():
            return  # things changed while the budget was awaited
        self._prepaid = weight
        await self.poll()

    async def _handle(self, message: Message) -> None:
        match message:
            case PlaceOrder(request, reply):
                await self._answer(reply, self._place, request, reply)
            case PlaceResolved(order, update, reply):
                await self._answer(reply, self._place_resolved, order, update)
            case CancelOrder(order_id, reply):
                await self._answer(reply, self._cancel, order_id)
            case CancelAll(symbol, reply):
                await self._answer(reply, self._cancel_all, symbol)
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
                await self._commit(self._book.fold(updates, now=self.now()))
            case StreamChanged(state, reason):
                self._on_stream_changed(state, reason)
            case BudgetGranted(weight):
                await self._poll_prepaid(weight)
            case GetAccount(reply):
                await self._answer(reply, self._read_account)
            case ChangeLeverage(symbol, leverage, reply):
                await self._answer(reply, self._change_leverage, symbol, leverage)
            case AccountChanged(update):
                self._sessions.send_all(account.update_message(update))

    async def _answer(
        self, reply: Reply[T], handler: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Run ``handler`` and send its result or its caller-facing error on ``reply``.

        A request never crashes the actor: any other exception fails this request only
        (logged with its traceback). A handler that returns :data:`DEFERRED` has handed a
        clone of ``reply`` to a child task, which answers. :class:`NotOwner` (the user
        moved to another instance) fails the request, then ends the actor.
        """
        lost: NotOwner | None = None
        with reply:
            try:
                value = await handler(*args)
            except (OrderRejected, ActorUnavailable, OrderNotFoundError) as exc:
                result: outcome.Outcome[Any] = outcome.Error(exc)
            except NotOwner as exc:
                lost = exc
                moved = ActorUnavailable("this user moved to another instance; try again")
                result = outcome.Error(moved)
            except Exception:
                self.request_failures += 1
                log.exception("user %d: a request failed inside the actor", self.user_id)
                failed = ActorUnavailable("Something went wrong handling this request; try again.")
                result = outcome.Error(failed)
            else:
                if value is DEFERRED:
                    return
                result = outcome.Value(value)
            with contextlib.suppress(trio.BrokenResourceError, trio.WouldBlock):
                reply.send_nowait(result)  # fails only when the caller gave up waiting
        if lost is not None:
            raise lost

    # ------------------------------------------------------------ place

    async def _place(self, request: PlaceOrderRequest, reply: Reply[Order]) -> Order | Deferred:
        """Save the order with its client id (the request's, else a fresh one), then send it.
        A client id the user already has answers with that order, sending nothing (a retry).
        An unknown outcome is looked up by a child task (the reply goes with it); a refusal
        is recorded as rejected."""
        client_order_id = request.client_order_id
        if client_order_id is not None:
            known = await self._store.find_order_by_client_id(self.user_id, client_order_id)
            if known is not None:
                return self._book.get(known.id or 0) or known
        self._check_usable()
        self._check_order_rate()
        change = new_order(
            user_id=self.user_id,
            client_order_id=client_order_id or new_client_order_id(),
            now=self.now(),
            **{
                f.name: getattr(request, f.name)
                for f in dataclasses.fields(request)
                if f.name != "client_order_id"
            },
        )
        [saved] = await self._commit(Folded(changes=[change]))
        order = saved.order
        try:
            update = await self.client.place_order(_to_exchange(order))
        except UnknownOutcome as exc:
            self._note_error(exc)
            assert self._nursery is not None
            self._nursery.start_soon(self._resolve_unknown, order, reply.clone())
            return DEFERRED
        except ExchangeError as exc:
            await self._place_refused(order, exc)
        return await self._merge(order, update)

    async def _place_refused(self, order: Order, exc: ExchangeError) -> NoReturn:
        """The exchange certainly did not take the order: record why, then raise what the
        caller must see."""
        await self._commit(
            Folded(changes=_some(mark_rejected(order, exchange_reason(exc), now=self.now())))
        )
        if not isinstance(exc, InvalidRequest | OrderNotFound):
            self._note_error(exc)  # a user's own refused order is not an actor error
        if isinstance(exc, OrderRateLimited):
            self._order_rate.refused_by_exchange(exc.retry_after, exc.limit, exc.window, self.now())
            seconds = math.ceil(exc.retry_after)
            raise ActorUnavailable(
                f"The exchange refused the order: this account placed too many orders; "
                f"try again in {seconds} s.",
                retry_after=seconds,
            )
        if isinstance(exc, InvalidRequest | OrderNotFound):
            raise OrderRejected(exc.code, exc.msg)
        await self._on_exchange_error(exc)
        raise ActorUnavailable(f"the exchange did not take the order: {exc.msg}")

    async def _resolve_unknown(self, order: Order, reply: Reply[Order]) -> None:
        """Child task: ask for the order by client id until the exchange knows it (never
        place again), then hand the answer to the actor. ``None`` when it stays unknown: the
        order is left ``pending`` and polls (with their vanish confirmations) settle it."""
        with reply:
            update: ExchangeUpdate | None = None
            for delay in self._config.resolve_delays:
                await trio.sleep(delay)
                self._config.fence(self.user_id)
                try:
                    await self._governor.spend(GET_ORDER_WEIGHT)
                    update = await self.client.get_order(
                        order.symbol, client_order_id=order.client_order_id
                    )
                    break
                except OrderNotFound:
                    continue  # not visible yet, or never arrived
                except (RateLimited, IPBanned) as exc:
                    await self._on_exchange_error(exc)
                    break
                except ExchangeError as exc:
                    self._note_error(exc)
                    if isinstance(exc, InvalidCredentials):
                        break
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._inbox.send(PlaceResolved(order, update, reply.clone()))

    async def _place_resolved(self, order: Order, update: ExchangeUpdate | None) -> Order:
        current = self._book.get(order.id or 0)
        if current is None:  # settled meanwhile (stream, poll): the store has the truth
            current = await self._store.get_order(self.user_id, order.id or 0) or order
        if update is None:
            log.warning(
                "user %d order %s: outcome unknown, left pending for polls to settle",
                self.user_id,
                order.id,
            )
            return current
        return await self._merge(current, update)

    # ------------------------------------------------------------ cancel

    async def _cancel(self, order_id: int) -> Order:
        """Cancel through the exchange; a -2011 on an order that filled resolves to filled."""
        order = await self._find_order(order_id)
        if order.status.terminal:
            return order
        self._check_usable()
        try:
            await self._spend(CANCEL_WEIGHT)
            update = await self.client.cancel_order(
                order.symbol, client_order_id=order.client_order_id
            )
        except OrderNotFound:
            update = await self._cancel_missed(order)
        except ExchangeError as exc:
            await self._write_failed(exc, "cancel")
        return await self._merge(order, update)

    async def _cancel_all(self, symbol: str) -> int:
        """``DELETE allOpenOrders`` for ``symbol``; the orders' new states follow at once by
        stream or by the poll it asks for. Returns how many pending orders it covered."""
        self._check_usable()
        covered = sum(1 for o in self._book.pending() if o.symbol == symbol)
        try:
            await self._spend(CANCEL_WEIGHT)
            await self.client.cancel_all_orders(symbol)
        except ExchangeError as exc:
            await self._write_failed(exc, "cancel")
        self._poll_now = True
        return covered

    async def _cancel_missed(self, order: Order) -> ExchangeUpdate:
        """The order is not open any more: learn what it became (filled, most likely).

        Raises:
            ActorUnavailable: the exchange does not know it either (retry later).
        """
        try:
            return await self._fetch(order)
        except OrderNotFound:
            # pending here, unknown there: not visible yet (a place just acknowledged), or
            # gone, which polls confirm and record; either way the answer is "not now"
            raise ActorUnavailable("the exchange does not show this order yet; try again") from None
        except ExchangeError as inner:
            self._note_error(inner)
            await self._on_exchange_error(inner)
            raise ActorUnavailable(f"cancel outcome unknown: {inner.msg}") from None

    async def _fetch(self, order: Order) -> ExchangeUpdate:
        """``GET order`` by client id, plus ``userTrades`` when it has executed more than its
        known trades add up to and the trades are tracked. A poll short of budget for the
        trades still reports the order's state: it is then owed its trades (a later cycle
        pays for them), so a detection never waits behind its fills."""
        await self._spend(GET_ORDER_WEIGHT)
        update = await self.client.get_order(order.symbol, client_order_id=order.client_order_id)
        if update.executed_qty == 0 or self._book.covers(order, update.executed_qty):
            return update
        try:
            await self._spend(USER_TRADES_WEIGHT)
        except NoRoom:
            return update
        fills = await self.client.user_trades(order.symbol, order_id=update.exchange_order_id)
        return dataclasses.replace(update, fills=tuple(fills))

    # ------------------------------------------------------------ poll

    async def poll(self) -> None:
        """One cycle: learn the state of every pending order and the trades of owed ones,
        merge, store, push.

        A request that meets a full budget is left for the next cycle (which pays for it up
        front), so the actor never sits in the governor's queue while messages wait.
        """
        started = trio.current_time()
        self._poll_now = self._reconcile_due = False
        self.polls += 1
        pending = self._book.pending()
        log.info("ORDER MONITOR - user %d: checking %d pending orders", self.user_id, len(pending))
        self._polling = True
        try:
            folded = await self._poll_orders(pending)
            folded.fills.extend(await self._fetch_owed())
        except NoRoom:  # an unplanned request (e.g. a symbol placed since the plan)
            log.info("user %d cycle cut short: the weight budget is spent", self.user_id)
            return
        except ExchangeError as exc:
            self._note_error(exc)
            await self._on_exchange_error(exc)
            return
        finally:
            self._polling = False
            self._prepaid = 0
            self._after_cycle()
        await self._commit(folded)
        observe_poll_cycle(trio.current_time() - started)
        elapsed_ms = (trio.current_time() - started) * 1000
        log.info("user %d order monitor check completed in %.0fms", self.user_id, elapsed_ms)

    def _after_cycle(self) -> None:
        self.last_poll = self.now()
        self._note_cycle_weight()
        self._declare_demand()
        self._schedule_next()

    async def _poll_orders(self, pending: list[Order]) -> Folded:
        """openOrders once per symbol; orders that left the open set are asked about."""
        listed: dict[str, ExchangeUpdate] = {}
        for symbol in sorted({o.symbol for o in pending}):
            await self._spend(OPEN_ORDERS_WEIGHT)
            for listing in await self.client.open_orders(symbol):
                listed[listing.client_order_id] = listing
        updates: list[ExchangeUpdate] = []
        gone: list[OrderChange] = []
        for order in pending:
            update = listed.get(order.client_order_id)
            if update is not None:
                self._book.seen_open(order)
            else:
                update = await self._settle(order, gone)
            if update is not None:
                updates.append(update)
        return self._fold_poll(updates, gone)

    def _fold_poll(self, updates: list[ExchangeUpdate], gone: list[OrderChange]) -> Folded:
        """What a cycle learnt: the snapshots folded, plus the orders confirmed gone."""
        folded = self._book.fold(updates, now=self.now())
        self._check_stream(folded.changes)
        folded.changes.extend(gone)
        return folded

    async def _settle(self, order: Order, gone: list[OrderChange]) -> ExchangeUpdate | None:
        """Ask for one order; -2013 answers are counted and, once confirmed, the order is
        added to ``gone`` as vanished."""
        try:
            update = await self._fetch(order)
        except OrderNotFound:
            gone.extend(_some(self._book.not_found(order, now=self.now())))
            return None
        except NoRoom:
            self._book.left_unsettled(order)  # the next cycle pays for it up front
            return None
        self._book.settled(order)
        return update

    async def _fetch_owed(self) -> list[OrderFill]:
        """``userTrades`` of each terminal order whose trades do not add up yet."""
        fresh: list[OrderFill] = []
        for order in self._book.owed():
            try:
                await self._spend(USER_TRADES_WEIGHT)
            except NoRoom:
                break
            fills = await self.client.user_trades(order.symbol, order_id=order.exchange_order_id)
            fresh.extend(self._book.trades_fetched(order, fills))
        return fresh


def _some(change: OrderChange | None) -> list[OrderChange]:
    return [] if change is None else [change]


def _to_exchange(order: Order) -> xp.PlaceOrder:
    return xp.PlaceOrder(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        price=order.price,
        time_in_force=order.time_in_force,
        reduce_only=order.reduce_only,
    )
