"""ActorCore: the state and plumbing of a user actor (see :mod:`tradercoin.actors.user`).

It holds what one user's actor owns (keys, exchange view, order book, policy, sessions) and
does what every handler shares: store a batch and push its events, keep the poll schedule and
the governor's demand, attach sessions, run the user stream, react to exchange errors and key
changes. :class:`~tradercoin.actors.user.UserActor` adds the loop and the handlers.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NoReturn

import trio

from tradercoin.actors import account
from tradercoin.actors.book import Folded, OrderBook, missed_by_stream
from tradercoin.actors.governor import Demand, RateGovernor
from tradercoin.actors.messages import (
    ActorState,
    ActorUnavailable,
    Message,
    OrderNotFoundError,
    OrderRejected,
    StreamState,
)
from tradercoin.actors.order_rate import OrderRateGate
from tradercoin.actors.parts import (
    CYCLE_WEIGHT_SMOOTHING,
    GET_ORDER_WEIGHT,
    OPEN_ORDERS_WEIGHT,
    USER_TRADES_WEIGHT,
    AccountFactory,
    ActorConfig,
    ActorStatistics,
    ActorStore,
    KeyRenewal,
    NoRoom,
    StreamRunner,
    next_tick,
)
from tradercoin.actors.sessions import Sessions, attach_session, catch_up
from tradercoin.clock import WallClock
from tradercoin.exchange import protocol as xp
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    RateLimited,
    UnknownOutcome,
)
from tradercoin.metrics import observe_delivery, observe_detection
from tradercoin.orders import MAX_ID, ExchangeUpdate, Order, OrderChange, OrderEvent, OrderStatus

__all__ = ["ActorCore"]

log = logging.getLogger("tradercoin.actors.user")

FILL_STATUSES = frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})


class ActorCore:
    """The state of user ``user_id``'s actor and the steps its handlers share.

    Args:
        mailbox: the receive side of the user's mailbox (the supervisor keeps it across
            restarts); ``inbox`` a send clone of it, for the actor's own tasks.
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
        self._client: xp.ExchangeClient | None = None
        self._policy = config.poll_defaults
        self._book = OrderBook(
            user_id,
            vanish_confirmations=config.vanish_confirmations,
            vanish_after_ms=int(config.vanish_after * 1000),
        )
        self._order_rate = OrderRateGate.binance()
        self._next_at = math.inf  # trio time of the next poll, fixed when it is scheduled
        self._queued = False  # a task waits in the governor's queue for this actor's poll
        self._polling = False
        self._prepaid = 0  # weight a cycle paid for up front and has not used yet
        self._spent_this_cycle = 0
        self._cycle_weight = 0.0
        self._poll_now = False
        self._reconcile_due = False  # a reconcile slot is reserved and its poll not run yet
        self._stopping = False
        self._stream_scope: trio.CancelScope | None = None
        self._renewal = KeyRenewal()
        self._healthy_since: int | None = None  # ms; None while the stream is not healthy
        self._nursery: trio.Nursery | None = None
        # status, read by the supervisor
        self.state: ActorState = "starting"
        self.stream_state: StreamState = "off"
        self.last_poll: int | None = None
        self.error_count = 0
        self.request_failures = 0
        self.last_error: str | None = None
        self.polls = 0

    # ------------------------------------------------------------ scheduling

    def _has_work(self) -> bool:
        return bool(len(self._book) or self._book.owed())

    def _has_fast(self) -> bool:
        return self._book.has_fast(self._policy.fast_notional)

    def _base_interval(self) -> float:
        if self.stream_state == "healthy" and not self._book.owed() and not self._book.in_doubt():
            return self._policy.reconcile_interval
        return self._policy.fast_interval if self._has_fast() else self._policy.interval

    def effective_interval(self) -> float:
        """The interval in force now: the policy's, stretched by the governor."""
        fast = self._has_fast() and self.stream_state != "healthy"
        return self._governor.effective_interval(self._base_interval(), fast=fast)

    def next_deadline(self) -> float:
        """Trio time of the next poll (``inf`` when nothing is pending or owed, or the actor
        is parked, or a poll waits for its budget)."""
        if self.state == "parked" or not self._has_work() or self._queued:
            return math.inf
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
        if not self._has_work() or self.state == "parked":
            self._governor.set_demand(self.user_id, None)
            return
        # what cycles really cost, fill fetches included
        weight = max(self._planned_weight(), self._cycle_weight)
        fast = self._has_fast() and self.stream_state != "healthy"
        self._governor.set_demand(self.user_id, Demand(weight, self._base_interval(), fast))

    def _planned_weight(self) -> int:
        """The weight a cycle pays up front: openOrders per symbol, the settling of orders a
        budget-short cycle left unsettled, and the trades of owed orders."""
        book = self._book
        return (
            len(book.symbols()) * OPEN_ORDERS_WEIGHT
            + book.unsettled() * (GET_ORDER_WEIGHT + USER_TRADES_WEIGHT)
            + len(book.owed()) * USER_TRADES_WEIGHT
        )

    async def _spend(self, weight: int) -> None:
        """Get the governor's leave to spend ``weight`` and count it for this cycle.

        Places and cancels wait for it; a poll uses what it paid up front, then asks
        without waiting (:class:`NoRoom`). Every exchange request passes here, so the
        ownership fence is checked here too (NotOwner ends the actor).
        """
        self._config.fence(self.user_id)
        if not self._polling:
            await self._governor.spend(weight)
        elif self._prepaid >= weight:
            self._prepaid -= weight
        elif not self._governor.try_spend(weight):
            raise NoRoom(weight)
        self._spent_this_cycle += weight

    def _note_cycle_weight(self) -> None:
        """Fold this cycle's weight into the running average that demand declares."""
        spent, self._spent_this_cycle = self._spent_this_cycle, 0
        self._cycle_weight += CYCLE_WEIGHT_SMOOTHING * (spent - self._cycle_weight)

    # ------------------------------------------------------------ state

    @property
    def pending_count(self) -> int:
        return len(self._book)

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            user_id=self.user_id,
            state=self.state,
            stream_state=self.stream_state,
            pending_orders=len(self._book),
            owed_orders=len(self._book.owed()),
            polls=self.polls,
            errors=self.error_count,
            request_failures=self.request_failures,
            places_refused_for_rate=self._order_rate.refused,
            cycle_weight=round(self._cycle_weight, 3),
            waiting_for_budget=self._queued,
            sessions=len(self._sessions),
        )

    def now(self) -> int:
        return self._clock.now_ms()

    @property
    def client(self) -> xp.ExchangeClient:
        if self._client is None:
            raise ActorUnavailable("the exchange rejected this user's API keys; update them")
        return self._client

    async def _commit(self, folded: Folded) -> list[OrderEvent]:
        """Store a batch's changes and trades (one group-committed transaction), then update
        the book, push the events and log them."""
        if not folded:
            return []
        self._config.fence(self.user_id)  # the store fences again, inside its transaction
        was_idle = not self._has_work()
        submitted = trio.current_time()
        events = await self._store.apply(folded.changes, folded.fills)
        for change, event in zip(folded.changes, events, strict=True):
            self._book.stored(event.order)
            before = "none" if change.before is None else change.before.status.value
            log.info(
                "user %d order %s status changed: %s -> %s",
                self.user_id,
                event.order.id,
                before,
                event.order.status.value,
            )
        self._book.settle_covered()
        if was_idle and self._has_work():
            self._schedule()
        self._push(events, submitted)
        self._declare_demand()
        return events

    def _push(self, events: list[OrderEvent], submitted: float) -> None:
        delivered = self._sessions.push(events)
        if not delivered:
            return
        now_ms = self._clock.now_ms()
        for event in events:
            observe_delivery(trio.current_time() - submitted)
            if event.order.status in FILL_STATUSES and event.order.exchange_update_time:
                observe_detection((now_ms - event.order.exchange_update_time) / 1000)
        log.info(
            "WebSocket notification sent to user %d: %d events, %d deliveries",
            self.user_id,
            len(events),
            delivered,
        )

    async def _merge(self, order: Order, update: ExchangeUpdate) -> Order:
        """Fold one snapshot of ``order`` and return the order as it stands after it."""
        events = await self._commit(self._book.fold([update], now=self.now()))
        mine = [e.order for e in events if e.order.id == order.id]
        return mine[-1] if mine else self._book.get(order.id or 0) or order

    def _check_usable(self) -> None:
        if self.state == "parked":
            raise ActorUnavailable("the exchange rejected this user's API keys; update them")
        if self._governor.paused_until > trio.current_time():
            retry = self._governor.paused_until - trio.current_time()
            raise ActorUnavailable(
                "the exchange's rate limit is in force; try again shortly", retry_after=retry
            )

    def _check_order_rate(self) -> None:
        wait_ms = self._order_rate.wait_ms(self.client.order_counts(), self.now())
        if wait_ms > 0:
            seconds = math.ceil(wait_ms / 1000)
            raise ActorUnavailable(
                f"This account has placed as many orders as the exchange allows for now; "
                f"try again in {seconds} s.",
                retry_after=seconds,
            )

    # ------------------------------------------------------------ sessions

    async def _attach(self, send: trio.MemorySendChannel[dict[str, Any]], since: int | None) -> int:
        """Register a session, replaying after ``since`` (see :func:`attach_session`)."""
        return await attach_session(self._store, self._sessions, send, since)

    async def _detach(self, session_id: int) -> None:
        self._sessions.remove(session_id)

    async def _catch_up_sessions(self) -> None:
        """After a restart: push what sessions may have missed while the actor was down (one
        bounded page; a session further behind is told to resync)."""
        await catch_up(self._store, self._sessions)

    # ------------------------------------------------------------ stream

    def _start_stream(self) -> None:
        runner = self._config.stream
        if runner is None or self._nursery is None:
            return
        self._stream_scope = scope = trio.CancelScope()
        self.stream_state = "connecting"
        self._renewal = KeyRenewal()
        self._nursery.start_soon(self._run_stream, runner, self._client, scope)

    async def _run_stream(self, runner: StreamRunner, client: Any, scope: trio.CancelScope) -> None:
        with scope:
            await runner(client, user_id=self.user_id, sink=self._inbox, renew=self._renewal)

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
        self._healthy_since = self.now() if state == "healthy" else None
        if "healthy" in (was, state) and state != "off":
            self._reconcile_soon()  # what a drop, or the time before, may hide
        self._declare_demand()

    def _reconcile_soon(self) -> None:
        """Poll in the reconcile slot the governor gives (spread with the other users whose
        stream changed at the same time: :meth:`RateGovernor.reconcile_at`); one slot
        covers every change until that poll. With nothing pending, the first order's
        commit polls at once (that poll is the reconcile)."""
        if not self._has_work():
            self._poll_now = True
            return
        if self._reconcile_due:
            return
        self._reconcile_due = True
        slot = self._governor.reconcile_at(max(self._planned_weight(), OPEN_ORDERS_WEIGHT))
        self._next_at = min(self._next_at, slot)

    def _check_stream(self, changes: list[OrderChange]) -> None:
        """Zombie keys by evidence: a poll found a change the healthy stream should have
        delivered, so the key is suspect: ask the stream runner for a new one (it counts it
        at the hub and says ``down`` until the new key is up)."""
        if self._healthy_since is None:
            return
        missed = missed_by_stream(changes, self._healthy_since, self.now())
        if missed:
            self._healthy_since = None
            self._renewal.request()
            change = missed[0]
            log.warning(
                "user %d listenKey suspect: the poll found order %s %s %.1fs after the "
                "exchange made it, never delivered by the healthy stream; recreating the key",
                self.user_id,
                change.after.id,
                change.after.status.value,
                (self.now() - change.after.exchange_update_time) / 1000,
            )

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

    # ------------------------------------------------------------ shared by requests

    async def _find_order(self, order_id: int) -> Order:
        if not 0 < order_id <= MAX_ID:
            raise OrderNotFoundError(order_id)
        order = self._book.get(order_id) or await self._store.get_order(self.user_id, order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    async def _write_failed(self, exc: ExchangeError, what: str) -> NoReturn:
        """Raise what the caller of a failed cancel must see. An unknown outcome asks for a
        poll now: the order's state shows within seconds either way."""
        self._note_error(exc)
        if isinstance(exc, InvalidRequest):
            raise OrderRejected(exc.code, exc.msg) from None
        if isinstance(exc, UnknownOutcome):
            self._poll_now = True
            raise ActorUnavailable(
                f"The exchange did not confirm the {what}; the order's state will show "
                f"within seconds."
            ) from None
        await self._on_exchange_error(exc)
        raise ActorUnavailable(f"the exchange did not take the {what}: {exc.msg}") from None

    async def _read_account(self) -> dict[str, Any]:
        """Balances and positions from the exchange (see :func:`account.snapshot`)."""
        self._check_usable()
        try:
            await self._spend(account.SNAPSHOT_WEIGHT)
            return await account.snapshot(self.client, self.now())  # type: ignore[arg-type]
        except ExchangeError as exc:
            self._note_error(exc)
            await self._on_exchange_error(exc)
            raise ActorUnavailable("The exchange could not be asked for the account now.") from None

    async def _change_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """``POST /fapi/v1/leverage`` with the user's keys. Raises OrderRejected with the
        exchange's words for a refusal (-4028, -2027...), ActorUnavailable otherwise."""
        self._check_usable()
        try:
            await self._spend(account.LEVERAGE_WEIGHT)
            # the client is an AccountView too (the same one _read_account uses)
            changed = await account.change_leverage(self.client, symbol, leverage)  # type: ignore[arg-type]
        except InvalidRequest as exc:
            raise OrderRejected(exc.code, exc.msg) from None
        except ExchangeError as exc:
            self._note_error(exc)
            await self._on_exchange_error(exc)
            raise ActorUnavailable(
                "The exchange could not be asked to change leverage now."
            ) from None
        return changed
