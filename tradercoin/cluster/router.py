"""Router: the HTTP layer's way to every user's actor, wherever in the cluster it runs.

:meth:`Router.actor` gives the local :class:`~tradercoin.actors.supervisor.ActorHandle` of a
user this instance owns, else a :class:`RemoteHandle` with the same methods. A remote handle's
sessions attach here, to the :class:`~tradercoin.cluster.relay.EventRelay` (which brings the
owner's events to them); its commands go to the owner over an internal HTTP call
(:mod:`tradercoin.cluster.internal`) through :class:`OwnerCalls`.

Why HTTP and not ``pg_notify`` for commands: a command needs an answer (the placed order, the
exchange's refusal), reaches exactly the owner, and its failure is seen at once by the caller,
who can retry or answer 503; a notification is broadcast, unanswered, and lost when the
owner's LISTEN connection is down at that moment. Poll-policy and credentials changes use the
same calls after the caller stored the change, so an owner that misses one still finds it in
the store when it (or the next owner) starts the actor.

Idempotence: a place forwarded without a client order id gets one here, before the first try,
so retrying after a timeout (the owner may have placed it) never places twice: the owner's
actor answers a known client order id with the order it already has.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import httpx
import trio

from tradercoin.actors.messages import (
    ActorStatus,
    ActorUnavailable,
    NoExchangeKeys,
    PlaceOrderRequest,
)
from tradercoin.actors.parts import new_client_order_id
from tradercoin.actors.sessions import Wire
from tradercoin.actors.supervisor import ActorHandle, Supervisor
from tradercoin.cluster.directory import Directory, InstanceInfo
from tradercoin.cluster.internal import HEADER, InternalAuth, error_of, request_to_wire
from tradercoin.cluster.relay import EventRelay
from tradercoin.config import PollPolicy
from tradercoin.orders import Order, order_from_wire
from tradercoin.store import Store

__all__ = ["OwnerCalls", "RemoteHandle", "Router"]

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0  # the whole wait for an owner's answer, retries included
ATTEMPT_TIMEOUT = 4.0  # one try; a retry goes to the owner as the directory then knows it
OWNER_POLL = 0.25  # how often the directory is asked again while no instance owns the user
RETRY_DELAY = 0.2
RETRY_AFTER = 2


class OwnerCalls:
    """Sends commands to the instance owning a user and returns its answer.

    Args:
        http: the pool the calls go through (the service's).
        directory: who owns which user.
        store: to tell "no owner" from "no keys".
        auth: signs the calls.
        timeout: the whole wait, retries included; ``attempt_timeout``: one try.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        directory: Directory,
        store: Store,
        auth: InternalAuth,
        *,
        timeout: float = CALL_TIMEOUT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self._http = http
        self._directory = directory
        self._store = store
        self._auth = auth
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.calls = 0
        self.retries = 0
        self.unanswered = 0

    async def call(self, user_id: int, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """The owner's answer to ``command``; waits at most :attr:`timeout`.

        A try that times out or cannot connect is tried again (the owner may have moved);
        an owner that answers it no longer owns the user is replaced by the new one, once.

        Raises:
            ActorUnavailable: no owner, or none answered in time (``retry_after`` set).
            NoExchangeKeys, OrderRejected, OrderNotFoundError: as the owner answered.
        """
        self.calls += 1
        payload = json.dumps(body, separators=(",", ":")).encode()
        moved = False
        with trio.move_on_after(self.timeout):
            while True:
                owner = await self._wait_owner(user_id)
                response = await self._try(owner, user_id, command, payload)
                if response is None:
                    self.retries += 1
                    await trio.sleep(RETRY_DELAY)
                    continue
                if response.status_code == 421 and not moved:
                    moved = True
                    self.retries += 1
                    continue
                return _answer(response)
        self.unanswered += 1
        raise ActorUnavailable(
            "No instance of the service answered for this account in time (it may be moving "
            "to another instance); try again in a few seconds.",
            retry_after=RETRY_AFTER,
        )

    async def _wait_owner(self, user_id: int) -> InstanceInfo:
        """The user's owner, waiting while there is none (a takeover in progress).

        Raises:
            NoExchangeKeys: nobody owns the user because the user has no keys.
        """
        checked_keys = False
        while True:
            owner = self._directory.owner_of(user_id)
            if owner is not None and owner.healthy:
                return owner
            if not checked_keys:
                if await self._store.credential_info(user_id) is None:
                    raise NoExchangeKeys("Store your exchange keys first.")
                checked_keys = True
            # the directory has no event to wait on; it refreshes about every second
            await trio.sleep(OWNER_POLL)

    async def _try(
        self, owner: InstanceInfo, user_id: int, command: str, payload: bytes
    ) -> httpx.Response | None:
        """One POST to ``owner``; ``None`` when it timed out or could not connect."""
        path = f"/internal/users/{user_id}/{command}"
        headers = {HEADER: self._auth.sign(path, payload), "Content-Type": "application/json"}
        try:
            with trio.fail_after(self.attempt_timeout):
                return await self._http.post(
                    owner.address.rstrip("/") + path, content=payload, headers=headers
                )
        except (httpx.TransportError, trio.TooSlowError) as error:
            log.warning(
                "user %d: %s call to instance %s failed (%s); trying again",
                user_id,
                command,
                owner.id,
                type(error).__name__,
            )
            return None

    def statistics(self) -> dict[str, int]:
        return {"calls": self.calls, "retries": self.retries, "unanswered": self.unanswered}


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ActorUnavailable(
            f"The instance owning this account answered {response.status_code} without a body.",
            retry_after=RETRY_AFTER,
        )
    if response.status_code == 200:
        return data
    error = data.get("error")
    raise error_of(response.status_code, error if isinstance(error, dict) else {})


class RemoteHandle:
    """A user's actor on another instance, with :class:`ActorHandle`'s caller methods.

    Commands go to the owner (:class:`OwnerCalls`); sessions attach to this instance's relay.
    Errors are :class:`ActorHandle`'s, plus :class:`NoExchangeKeys`.
    """

    def __init__(self, user_id: int, router: Router) -> None:
        self.user_id = user_id
        self._router = router

    async def place(self, request: PlaceOrderRequest) -> Order:
        if request.client_order_id is None:  # before the first try: retries reuse it
            request = dataclasses.replace(request, client_order_id=new_client_order_id())
        answer = await self._call("place", request_to_wire(request))
        return order_from_wire(self.user_id, answer["order"])

    async def cancel(self, order_id: int) -> Order:
        answer = await self._call("cancel", {"order_id": order_id})
        return order_from_wire(self.user_id, answer["order"])

    async def cancel_all(self, symbol: str) -> int:
        return int((await self._call("cancel_all", {"symbol": symbol}))["canceled"])

    async def get_account(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._call("account", {}))["data"]
        return data

    async def change_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        answer = await self._call("leverage", {"symbol": symbol, "leverage": leverage})
        data: dict[str, Any] = answer["data"]
        return data

    async def attach(self, send: trio.MemorySendChannel[Wire], since: int | None = None) -> int:
        """Attach ``send`` here, fed by the relay (see :meth:`ActorHandle.attach`)."""
        return await self._router.relay.attach(self.user_id, send, since)

    async def detach(self, session_id: int) -> None:
        self._router.relay.detach(self.user_id, session_id)

    async def _call(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._router.calls.call(self.user_id, command, body)


class Router:
    """What the HTTP layer sees as its supervisor in a cluster (``ctx.supervisor``).

    Args:
        local: this instance's supervisor (the actors it owns).
        directory: who owns which user.
        relay: this instance's event relay.
        calls: the way to other instances' actors.
        store: where poll policies are stored.
        auth: checks the internal calls this instance answers.
    """

    def __init__(
        self,
        *,
        local: Supervisor,
        directory: Directory,
        relay: EventRelay,
        calls: OwnerCalls,
        store: Store,
        auth: InternalAuth,
    ) -> None:
        self.local = local
        self.directory = directory
        self.relay = relay
        self.calls = calls
        self.store = store
        self.auth = auth

    def is_owner(self, user_id: int) -> bool:
        return self.directory.owns(user_id)

    def actor(self, user_id: int) -> ActorHandle | RemoteHandle | None:
        """The local handle of a user owned here (``None``: no keys), else a remote one."""
        if self.directory.owns(user_id):
            return self.local.actor(user_id)
        return RemoteHandle(user_id, self)

    async def credentials_changed(self, user_id: int) -> None:
        """Tell the owner to start, reload or stop the user's actor (keys already stored).
        A user nobody owns yet is adopted by an instance with room, keys read then."""
        if self.directory.owns(user_id):
            await self.local.credentials_changed(user_id)
        elif self.directory.owner_of(user_id) is not None:
            await self._tell(user_id, "credentials")

    async def set_poll_policy(
        self, user_id: int, policy: PollPolicy, *, updated_by: int | None
    ) -> None:
        """Store ``policy`` and tell the owner (an actor started later reads it stored)."""
        if self.directory.owns(user_id):
            await self.local.set_poll_policy(user_id, policy, updated_by=updated_by)
            return
        await self.store.set_poll_policy(user_id, policy, updated_by=updated_by)
        if self.directory.owner_of(user_id) is not None:
            await self._tell(user_id, "poll_policy")

    async def _tell(self, user_id: int, command: str) -> None:
        """A change already stored: the owner that misses it reads it at its next start."""
        try:
            await self.calls.call(user_id, command, {})
        except ActorUnavailable as error:
            log.warning(
                "user %d: the owner was not told of the %s change: %s", user_id, command, error
            )

    def statuses(self) -> list[ActorStatus]:
        return self.local.statuses()

    def statistics(self) -> Any:
        return self.local.statistics()
