"""Supervisor: owns the actors' nursery, the ``user_id -> actor`` registry, and restarts.

Each user has one :class:`ActorHandle` for as long as the user has credentials. The handle
outlives actor incarnations: it keeps the mailbox, the sessions (the user's entry in the
process's :class:`~tradercoin.actors.sessions.SessionRegistry`) and the cancel scope (created
before the actor starts, so stopping a user is one race-free ``scope.cancel()``). An actor that
raises is logged with its user id and restarted after an exponential back-off with seeded
jitter (1 s up to 5 min by default); the other actors never notice. ``trio.Cancelled`` is never
caught, and an error outside an actor (a supervisor bug) crashes the supervisor's nursery.

In a cluster (a :class:`~tradercoin.cluster.directory.Directory` other than
:class:`~tradercoin.cluster.directory.SingleInstance`) the supervisor starts no actor by itself:
ownership calls :meth:`Supervisor.adopt` for each user this instance claimed and
:meth:`Supervisor.release` / :meth:`Supervisor.release_all` when it hands users over or loses
them. Actors fence themselves (the directory's ``fence``): an actor that finds it no longer
owns its user ends quietly, without a restart, and its handle is dropped.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import trio

from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.handle import Actor, ActorHandle, Ready
from tradercoin.actors.messages import (
    ActorStatus,
    CredentialsChanged,
    SetPollPolicy,
    SupervisorStatistics,
    Wake,
)
from tradercoin.actors.parts import StreamRunner
from tradercoin.actors.sessions import SessionRegistry
from tradercoin.actors.stream import StreamOptions, run_user_stream
from tradercoin.actors.user import AccountFactory, ActorConfig, ActorStore, UserActor
from tradercoin.clock import WallClock
from tradercoin.cluster.directory import Directory, NotOwner, SingleInstance
from tradercoin.config import PollPolicy

__all__ = ["ActorHandle", "Supervisor", "SupervisorStore", "backoff_delay"]

log = logging.getLogger(__name__)

GOLDEN = 0.6180339887498949
T = TypeVar("T")


class SupervisorStore(ActorStore, Protocol):
    """What the supervisor needs of :class:`tradercoin.store.Store` (beyond the actors')."""

    async def users_with_credentials(self) -> list[int]: ...
    async def users_with_pending_orders(self) -> set[int]: ...
    async def set_poll_policy(
        self, user_id: int, policy: PollPolicy, *, updated_by: int | None
    ) -> None: ...


ActorFactory = Callable[["ActorHandle"], Actor]


def backoff_delay(failures: int, rng: random.Random, *, low: float, high: float) -> float:
    """``low * 2**(failures-1)`` plus up to 25 % jitter, never above ``high``."""
    base = min(high, low * 2.0 ** max(failures - 1, 0))
    return min(high, base + rng.uniform(0, base / 4))


class Supervisor:
    """Runs one actor per user with credentials. One per process.

    Args:
        store, exchange, governor, clock: the shared parts every actor uses.
        poll_defaults: the policy of users who have none stored.
        stream_ws_url: the exchange's user-data-stream base (``None``: poll only).
        stream_runner: the actors' stream runner (the service's: through the process's
            :class:`~tradercoin.actors.hub.StreamHub`); by default, with ``stream_ws_url``,
            one connection per user (:func:`run_user_stream`, the benchmark's comparison).
        connect_ws: how to open a WebSocket (trio-websocket's by default; the simulator's
            in-process ``open_websocket`` in tests).
        restart_min, restart_max: the back-off bounds of a crashed actor's restart.
        healthy_after: an incarnation that ran this long resets the back-off.
        seed: seeds every user's restart jitter, so runs repeat.
        actor_factory: builds an actor for a handle (default: an ``actor_class``).
        actor_class: the class of the default factory's actors (tests inject faults with a
            subclass of :class:`UserActor`).
        stream_options: extra keyword arguments for the stream task (timeouts).
        sessions: the process's session registry (a cluster's relay shares it); by default
            the supervisor's own.
        directory: who owns which user (default: this instance owns every user).
    """

    def __init__(
        self,
        *,
        store: SupervisorStore,
        exchange: AccountFactory,
        governor: RateGovernor,
        clock: WallClock,
        poll_defaults: PollPolicy,
        stream_ws_url: str | None = None,
        stream_runner: StreamRunner | None = None,
        connect_ws: Any = None,
        mailbox_size: int = 64,
        restart_min: float = 1.0,
        restart_max: float = 300.0,
        healthy_after: float = 300.0,
        seed: int = 0,
        actor_factory: ActorFactory | None = None,
        actor_class: type[UserActor] = UserActor,
        stream_options: dict[str, Any] | None = None,
        sessions: SessionRegistry | None = None,
        directory: Directory | None = None,
    ) -> None:
        self._store = store
        self.sessions = SessionRegistry() if sessions is None else sessions
        self._exchange = exchange
        self._governor = governor
        self._clock = clock
        self.directory: Directory = directory or SingleInstance()
        self._clustered = not isinstance(self.directory, SingleInstance)
        self._config = ActorConfig(
            fence=self.directory.fence,
            poll_defaults=poll_defaults,
            stream=stream_runner
            or _stream_runner(stream_ws_url, connect_ws, governor, stream_options or {}),
            mailbox_size=mailbox_size,
        )
        self._restart = (restart_min, restart_max, healthy_after)
        self._seed = seed
        self._actor_class = actor_class
        self._factory = actor_factory or self._user_actor
        self._handles: dict[int, ActorHandle] = {}
        self._nursery: trio.Nursery | None = None
        self._restarts = 0

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start an actor for every user with credentials; ``started()`` once each is up
        (or has failed once and is backing off). Runs until cancelled; then every actor is
        cancelled, queued requests fail with :class:`ActorUnavailable`, and every mailbox
        and session channel is closed. In a cluster no actor starts here (see
        :meth:`adopt`).
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                users = [] if self._clustered else await self._store.users_with_credentials()
                handles = await self._start_all(users)
                policy = self._config.poll_defaults
                log.info(
                    "order monitor started: %d actors, checking every %gs (fast %gs for "
                    "notional >= %s, %gs while the user stream is up)",
                    len(handles),
                    policy.interval,
                    policy.fast_interval,
                    policy.fast_notional,
                    policy.reconcile_interval,
                )
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for handle in self._handles.values():
                self._close(handle)
            self._handles.clear()

    async def _start_all(self, users: list[int]) -> list[ActorHandle]:
        """Start every user's actor, those with pending orders first: each actor creates its
        listenKey (weight 1, through the governor's first-come queue) as it starts, and
        10,000 keys take over four minutes of the IP's budget, so the users with something
        to watch are on the stream first. It costs one query. Sessions attach only after
        start, so they cannot order it. Returns once every actor is up (or failed once)."""
        pending = await self._store.users_with_pending_orders()
        first = [self._start(user_id) for user_id in users if user_id in pending]
        for handle in first:
            await handle.up.wait()
        rest = [self._start(user_id) for user_id in users if user_id not in pending]
        for handle in rest:
            await handle.up.wait()
        return first + rest

    def _start(self, user_id: int) -> ActorHandle:
        assert self._nursery is not None, "Supervisor.run is not running"
        rng = random.Random(self._seed * 1_000_003 + user_id)
        sessions = self.sessions.hold(user_id)
        handle = ActorHandle(
            user_id, mailbox_size=self._config.mailbox_size, rng=rng, sessions=sessions
        )
        self._handles[user_id] = handle
        self._nursery.start_soon(self._supervise, handle, name=f"actor-{user_id}")
        return handle

    async def _supervise(self, handle: ActorHandle) -> None:
        """Run incarnations of the user's actor until it stops cleanly or is cancelled."""
        low, high, healthy_after = self._restart
        failures = 0
        with handle.scope:
            try:
                while True:
                    handle.actor = self._factory(handle)
                    began = trio.current_time()
                    try:
                        await _run_incarnation(handle)
                        return
                    except Exception as exc:  # the actor's error boundary; Cancelled passes
                        if _not_owner(exc):
                            self._forget(handle, "this instance no longer owns the user")
                            return
                        failures = (
                            1 if trio.current_time() - began >= healthy_after else failures + 1
                        )
                        delay = backoff_delay(failures, handle.rng, low=low, high=high)
                        self._crashed(handle, exc, delay)
                    await self._back_off(handle, delay)
            finally:
                handle.state = "stopped"
                self._governor.set_demand(handle.user_id, None)
                handle.done.set()

    def _crashed(self, handle: ActorHandle, exc: Exception, delay: float) -> None:
        handle.crashes += 1
        handle.last_crash = f"{type(exc).__name__}: {exc}"
        handle.state = "backoff"
        handle.up.set()
        log.error(
            "user %d actor crashed (%s); restart in %.1fs",
            handle.user_id,
            handle.last_crash,
            delay,
            exc_info=exc,
        )

    async def _back_off(self, handle: ActorHandle, delay: float) -> None:
        handle.backoff_scope = trio.CancelScope()
        with handle.backoff_scope:
            await trio.sleep(delay)
        handle.backoff_scope = None
        handle.restarts += 1
        self._restarts += 1
        handle.state = "starting"

    def _user_actor(self, handle: ActorHandle) -> UserActor:
        return self._actor_class(
            handle.user_id,
            store=self._store,
            exchange=self._exchange,
            governor=self._governor,
            clock=self._clock,
            config=self._config,
            mailbox=handle.mailbox_out,
            inbox=handle.mailbox,
            sessions=handle.sessions,
            phase=(handle.user_id * GOLDEN) % 1.0,
        )

    # ------------------------------------------------------------ cluster ownership

    def adopt(self, user_id: int) -> ActorHandle:
        """Run ``user_id``'s actor here (ownership claimed it); nothing happens when it runs
        already. Returns its handle (await ``handle.up`` to wait for the start)."""
        handle = self._handles.get(user_id)
        if handle is not None and not handle.done.is_set():
            return handle
        if handle is not None:
            self._close(handle, keep_sessions=True)  # it stopped by itself: start afresh
        return self._start(user_id)

    async def release(self, user_id: int) -> None:
        """Stop ``user_id``'s actor (handed over to another instance) and return once it is
        gone; requests queued or sent later fail with :class:`ActorUnavailable`."""
        handle = self._handles.get(user_id)
        if handle is not None:
            handle.scope.cancel()
            await handle.done.wait()
            self._forget(handle, "handed over")

    def release_all(self) -> None:
        """Stop every actor at once (ownership lost): nothing is awaited, the actors'
        cancellation is delivered at their next checkpoint."""
        for handle in list(self._handles.values()):
            handle.scope.cancel()
            self._forget(handle, "ownership lost")

    def _forget(self, handle: ActorHandle, why: str, *, keep_sessions: bool = True) -> None:
        """Drop ``handle``; its sessions stay (the relay brings them the events of the
        user's new owner) unless ``keep_sessions`` is false."""
        self._close(handle, keep_sessions=keep_sessions)
        if self._handles.get(handle.user_id) is handle:
            del self._handles[handle.user_id]
        log.info("user %d actor stopped here: %s", handle.user_id, why)

    # ------------------------------------------------------------ registry

    def actor(self, user_id: int) -> ActorHandle | None:
        """The handle of ``user_id``'s actor, or ``None`` when the user has no keys."""
        return self._handles.get(user_id)

    async def credentials_changed(self, user_id: int) -> None:
        """Start, resume or stop ``user_id``'s actor after its keys were added, rotated or
        removed. Returns once a new actor is up (or failed once), or an old one is gone."""
        present = await self._store.get_credentials(user_id) is not None
        handle = self._handles.get(user_id)
        if not present:
            if handle is not None:
                await self._stop(handle)
            return
        if handle is not None and handle.done.is_set():
            self._close(handle)  # an actor that stopped by itself: start afresh
            handle = None
        if handle is None and not self.directory.owns(user_id):
            return  # another instance's, or ownership claims it within a round
        if handle is None:
            await self._start(user_id).up.wait()
        elif handle.state == "backoff" and handle.backoff_scope is not None:
            handle.backoff_scope.cancel()
        else:
            handle.tell(CredentialsChanged())

    async def _stop(self, handle: ActorHandle) -> None:
        handle.scope.cancel()
        await handle.done.wait()
        handle.sessions.send_all(
            {"type": "alert", "kind": "credentials_removed", "message": "Exchange keys removed."}
        )
        self._forget(handle, "credentials removed", keep_sessions=False)

    def _close(self, handle: ActorHandle, *, keep_sessions: bool = False) -> None:
        """Close ``handle`` and let go of its sessions' entry in the registry."""
        handle.close(keep_sessions=keep_sessions)
        self.sessions.let_go(handle.user_id)

    async def set_poll_policy(
        self, user_id: int, policy: PollPolicy, *, updated_by: int | None
    ) -> None:
        """Store ``policy`` for ``user_id`` and tell its actor (in force from its next
        deadline; an actor restarting reads it from the store)."""
        await self._store.set_poll_policy(user_id, policy, updated_by=updated_by)
        handle = self._handles.get(user_id)
        if handle is not None:
            handle.tell(SetPollPolicy(policy))

    def wake(self, user_id: int) -> None:
        """Ask ``user_id``'s actor to poll now."""
        handle = self._handles.get(user_id)
        if handle is not None:
            handle.tell(Wake())

    # ------------------------------------------------------------ reporting

    def statuses(self) -> list[ActorStatus]:
        now_ms = self._clock.now_ms()
        return [self._handles[u].status(now_ms) for u in sorted(self._handles)]

    def statistics(self) -> SupervisorStatistics:
        states = [h.current_state for h in self._handles.values()]
        return SupervisorStatistics(
            actors=len(states),
            running=states.count("running"),
            parked=states.count("parked"),
            backoff=states.count("backoff"),
            sessions=sum(len(h.sessions) for h in self._handles.values()),
            restarts=self._restarts,
            pending_orders=sum(
                h.actor.pending_count for h in self._handles.values() if h.actor is not None
            ),
        )


async def _run_incarnation(handle: ActorHandle) -> None:
    """One run of the handle's actor. An actor that fails while it is being cancelled raises
    a group of its error and trio's Cancelled: the error is logged and only the cancellation
    goes on (the supervisor is stopping it; a restart would be pointless)."""
    assert handle.actor is not None
    try:
        await handle.actor.run(task_status=Ready(handle))
    except BaseExceptionGroup as group:
        cancelled, errors = group.split(trio.Cancelled)
        if cancelled is None or errors is None:
            raise
        log.error("user %d actor failed while stopping", handle.user_id, exc_info=errors)
        raise cancelled from None


def _not_owner(exc: Exception) -> bool:
    """The actor ended because it found it no longer owns its user (maybe inside a group)."""
    if isinstance(exc, ExceptionGroup):
        matched, rest = exc.split(NotOwner)
        return matched is not None and rest is None
    return isinstance(exc, NotOwner)


def _stream_runner(
    url: str | None, connect: Any, governor: RateGovernor, options: dict[str, Any]
) -> Any:
    if url is None:
        return None
    kwargs: dict[str, Any] = {"ws_url": url, "governor": governor}
    if options:
        kwargs["options"] = StreamOptions(**options)
    if connect is not None:
        kwargs["connect"] = connect
    return functools.partial(run_user_stream, **kwargs)
