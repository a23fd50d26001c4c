"""The handle of one user's actor: the way callers reach it, kept by the supervisor across the
actor's incarnations (restarts), and the protocol of what a handle holds as its actor.

The handle keeps the mailbox, the sessions and the cancel scope (created before the actor
starts, so stopping a user is one race-free ``scope.cancel()``); every request fails at once
with :class:`ActorUnavailable` while the actor backs off after a crash or is stopped.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import trio

from tradercoin.actors.messages import (
    ActorState,
    ActorStatus,
    ActorUnavailable,
    AttachSession,
    CancelAll,
    CancelOrder,
    ChangeLeverage,
    DetachSession,
    GetAccount,
    Message,
    PlaceOrder,
    PlaceOrderRequest,
    Reply,
    StreamState,
    ask,
)
from tradercoin.actors.sessions import Sessions
from tradercoin.orders import Order

__all__ = ["Actor", "ActorHandle", "Ready"]

log = logging.getLogger("tradercoin.actors.supervisor")
T = TypeVar("T")


class Actor(Protocol):
    """What the supervisor needs of an actor (:class:`UserActor`, or a test's own)."""

    state: ActorState
    stream_state: StreamState
    last_poll: int | None
    error_count: int
    last_error: str | None

    @property
    def pending_count(self) -> int: ...
    def next_deadline(self) -> float: ...
    def effective_interval(self) -> float: ...
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


class ActorHandle:
    """The way to one user's actor. Callers use :meth:`place`, :meth:`cancel`,
    :meth:`attach`, :meth:`detach`; everything else is the supervisor's.

    Every method raises :class:`ActorUnavailable` at once while the actor restarts after a
    crash, after it was stopped, or when its mailbox is full.
    """

    def __init__(
        self,
        user_id: int,
        *,
        mailbox_size: int,
        rng: random.Random,
        sessions: Sessions | None = None,
    ) -> None:
        self.user_id = user_id
        self.sessions = Sessions(user_id) if sessions is None else sessions
        self.mailbox, self.mailbox_out = trio.open_memory_channel[Message](mailbox_size)
        self.scope = trio.CancelScope()
        self.actor: Actor | None = None
        self.state: ActorState = "starting"
        self.restarts = 0
        self.crashes = 0
        self.last_crash: str | None = None
        self.rng = rng
        self.up = trio.Event()
        self.done = trio.Event()
        self.backoff_scope: trio.CancelScope | None = None

    async def place(self, request: PlaceOrderRequest) -> Order:
        """Place an order; returns it stored (``new``/``filled``..., or ``pending`` when the
        exchange's answer stays unknown).

        Raises:
            OrderRejected: the exchange refused it (``code``, ``message``).
            ActorUnavailable: see the class.
        """
        return await self._ask(lambda reply: PlaceOrder(request, reply))

    async def cancel(self, order_id: int) -> Order:
        """Cancel one of this user's orders; returns it as it ended (canceled, or filled when
        it filled meanwhile; a terminal order is returned unchanged).

        Raises:
            OrderNotFoundError: no such order for this user.
            OrderRejected: the exchange refused the cancel.
            ActorUnavailable: see the class.
        """
        return await self._ask(lambda reply: CancelOrder(order_id, reply))

    async def cancel_all(self, symbol: str) -> int:
        """Cancel every open order of ``symbol`` at the exchange; returns how many of this
        user's pending orders of that symbol it covered (their new states follow as events).

        Raises:
            OrderRejected: the exchange refused it (e.g. an unknown symbol).
            ActorUnavailable: see the class.
        """
        return await self._ask(lambda reply: CancelAll(symbol, reply))

    async def get_account(self) -> dict[str, Any]:
        """Balances and positions read from the exchange now (the account's wire JSON)."""
        return await self._ask(GetAccount)

    async def change_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """Set ``symbol``'s initial leverage at the exchange; the exchange's answer.

        Raises:
            OrderRejected: the exchange refused it (its words).
            ActorUnavailable: see the class.
        """
        return await self._ask(lambda reply: ChangeLeverage(symbol, leverage, reply))

    async def attach(
        self, send: trio.MemorySendChannel[dict[str, Any]], since: int | None = None
    ) -> int:
        """Hand ``send`` (capacity >= 2) to the actor as a session; returns its id.

        With ``since``, the actor first sends every stored event after ``since`` on ``send``,
        then goes live, all inside one mailbox step: no gap, no duplicate (or a ``resync``
        when those events are no longer kept). Without it, the session gets events newer than
        the newest stored one. The actor owns ``send`` from now on and closes it on detach,
        when the session lags (after a ``resync``), or at shutdown.
        """
        try:
            return await self._ask(lambda reply: AttachSession(send, since, reply))
        except ActorUnavailable:
            send.close()
            raise

    async def detach(self, session_id: int) -> None:
        """Forget a session and close its channel (no-op for an unknown id)."""
        if self.state in ("backoff", "stopped"):
            self.sessions.remove(session_id)
            return
        await self._ask(self._detach_message(session_id))

    @staticmethod
    def _detach_message(session_id: int) -> Callable[[Reply[None]], Message]:
        return lambda reply: DetachSession(session_id, reply)

    async def _ask(self, make: Callable[[Reply[T]], Message]) -> T:
        if self.state == "backoff":
            raise ActorUnavailable("the user's actor is restarting; try again shortly")
        if self.state == "stopped":
            raise ActorUnavailable("the user's actor is stopped")
        return await ask(self.mailbox, make)

    def tell(self, message: Message) -> None:
        """Send a message that needs no answer; dropped when the actor is gone or swamped."""
        try:
            self.mailbox.send_nowait(message)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("user %d: %s not delivered (mailbox full or closed)", self.user_id, message)

    @property
    def current_state(self) -> ActorState:
        """The handle's state, or the running actor's own (e.g. ``parked``)."""
        if self.state == "running" and self.actor is not None:
            return self.actor.state
        return self.state

    def status(self, now_ms: int) -> ActorStatus:
        """The operator's view; ``now_ms`` converts the next deadline to epoch ms."""
        actor = self.actor
        now = trio.current_time()
        deadline = math.inf if actor is None or self.state != "running" else actor.next_deadline()
        return ActorStatus(
            user_id=self.user_id,
            state=self.current_state,
            pending_orders=0 if actor is None else actor.pending_count,
            last_poll=None if actor is None else actor.last_poll,
            next_poll=None if math.isinf(deadline) else now_ms + int(max(deadline - now, 0) * 1000),
            stream_state="off" if actor is None else actor.stream_state,
            error_count=self.crashes + (0 if actor is None else actor.error_count),
            last_error=(actor.last_error if actor is not None else None) or self.last_crash,
            effective_interval=None if actor is None else actor.effective_interval(),
            sessions=len(self.sessions),
            restarts=self.restarts,
        )

    def close(self, *, keep_sessions: bool = False) -> None:
        """Shut the handle: fail queued requests, close the mailbox and every session (but
        with ``keep_sessions``: the user's ownership moved to another instance, whose events
        the relay brings to these sessions from now on)."""
        self.state = "stopped"
        self.mailbox.close()
        while True:
            try:
                message = self.mailbox_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            reply = getattr(message, "reply", None)
            if reply is not None:
                reply.close()
        self.mailbox_out.close()
        if not keep_sessions:
            self.sessions.close_all()


class Ready:
    """The ``task_status`` given to each actor incarnation: marks the handle running."""

    def __init__(self, handle: ActorHandle) -> None:
        self._handle = handle

    def started(self, value: None = None) -> None:
        self._handle.state = "running"
        self._handle.up.set()
