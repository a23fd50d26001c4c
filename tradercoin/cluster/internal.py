"""Internal calls: a command for a user's actor, sent by any instance to the user's owner.

``POST {owner}/internal/users/<user_id>/<command>`` on the owner's normal port, a JSON body,
signed: the header ``X-Tradercoin-Internal: <epoch ms>.<hex HMAC-SHA256>`` covers
``"<ms>\\n<path>\\n"`` and the body, under a key derived from the master key (every instance of
a cluster has the same one; neither key nor signature is ever logged). A signature older or
newer than :data:`MAX_SKEW_MS` is refused, so a captured call cannot be replayed later (and a
place replayed sooner is answered by its client order id, not placed again).

Commands: ``place``, ``cancel``, ``cancel_all``, ``account``, ``leverage``, ``credentials``
(reload, start or stop the actor after a change stored by the caller) and ``poll_policy``
(use the policy the caller stored). Answers: 200 with the result, or an error in the API's
shape whose status says what the caller raises: 421 ``not_owner`` (ask the new owner), 409
``no_exchange_keys``, 400 ``order_rejected`` (with the exchange's code), 404
``order_not_found``, 503 ``unavailable`` (with ``retry_after``), 401 bad signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from decimal import Decimal
from typing import Any, Protocol

import trio
from quart import Quart, Response, request
from quart_schema import hide

from tradercoin.actors.messages import (
    ActorUnavailable,
    NoExchangeKeys,
    OrderNotFoundError,
    OrderRejected,
    PlaceOrderRequest,
    SetPollPolicy,
)
from tradercoin.clock import WallClock
from tradercoin.cluster.directory import Directory
from tradercoin.orders import OrderType, Side, TimeInForce, order_to_wire

__all__ = [
    "COMMANDS",
    "HEADER",
    "InternalAuth",
    "OwnerSide",
    "error_of",
    "register_routes",
    "request_from_wire",
    "request_to_wire",
]

log = logging.getLogger(__name__)

HEADER = "X-Tradercoin-Internal"
MAX_SKEW_MS = 60_000
OWNER_TIMEOUT = 30.0  # the owner's own bound on an actor's answer (a place may take long)
COMMANDS = frozenset(
    {"place", "cancel", "cancel_all", "account", "leverage", "credentials", "poll_policy"}
)
_PURPOSE = b"tradercoin internal calls v1"


class InternalAuth:
    """Signs and checks internal calls with a key derived from the master key."""

    def __init__(self, master_key: bytes, clock: WallClock) -> None:
        self._key = hmac.new(master_key, _PURPOSE, hashlib.sha256).digest()
        self._clock = clock

    def __repr__(self) -> str:
        return "InternalAuth(<key hidden>)"

    def sign(self, path: str, body: bytes) -> str:
        """The header value for a call of ``path`` with ``body``, now."""
        now = self._clock.now_ms()
        return f"{now}.{self._mac(now, path, body)}"

    def verify(self, header: str | None, path: str, body: bytes) -> bool:
        """Whether ``header`` signs ``path`` and ``body`` and is recent."""
        stamp, _, mac = (header or "").partition(".")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 16):
            return False
        if abs(self._clock.now_ms() - int(stamp)) > MAX_SKEW_MS:
            return False
        return hmac.compare_digest(mac, self._mac(int(stamp), path, body))

    def _mac(self, stamp: int, path: str, body: bytes) -> str:
        message = f"{stamp}\n{path}\n".encode() + body
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- wire


def request_to_wire(req: PlaceOrderRequest) -> dict[str, Any]:
    return {
        "symbol": req.symbol,
        "side": req.side.value,
        "type": req.type.value,
        "quantity": str(req.quantity),
        "price": None if req.price is None else str(req.price),
        "time_in_force": None if req.time_in_force is None else req.time_in_force.value,
        "reduce_only": req.reduce_only,
        "client_order_id": req.client_order_id,
    }


def request_from_wire(wire: dict[str, Any]) -> PlaceOrderRequest:
    """Raises: KeyError, ValueError for a body that is not :func:`request_to_wire`'s."""
    tif = wire["time_in_force"]
    return PlaceOrderRequest(
        symbol=str(wire["symbol"]),
        side=Side(wire["side"]),
        type=OrderType(wire["type"]),
        quantity=Decimal(wire["quantity"]),
        price=None if wire["price"] is None else Decimal(wire["price"]),
        time_in_force=None if tif is None else TimeInForce(tif),
        reduce_only=bool(wire["reduce_only"]),
        client_order_id=wire["client_order_id"],
    )


def error_of(status: int, error: dict[str, Any]) -> Exception:
    """What the caller raises for the owner's error answer (see the module docstring)."""
    message = str(error.get("message") or "the owning instance refused the request")
    if status == 409:
        return NoExchangeKeys(message)
    if status == 400 and error.get("code") == "order_rejected":
        code = error.get("exchange_code")
        return OrderRejected(code if isinstance(code, int) else None, message)
    if status == 404 and error.get("code") == "order_not_found":
        return OrderNotFoundError(int(error.get("order_id") or 0))
    retry = error.get("retry_after")
    if status == 401:
        log.error("an internal call was refused: do all instances share the master key?")
    return ActorUnavailable(message, retry_after=retry if isinstance(retry, int | float) else None)


# ---------------------------------------------------------------- the owner's side


class OwnerSide(Protocol):
    """What the owner's route needs (:class:`tradercoin.cluster.router.Router` has it)."""

    auth: InternalAuth
    directory: Directory
    local: Any  # the Supervisor
    store: Any  # the Store

    def is_owner(self, user_id: int) -> bool: ...


def register_routes(app: Quart, owner: OwnerSide) -> None:
    """Serve ``POST /internal/users/<user_id>/<command>`` for ``owner`` (hidden from OpenAPI)."""

    @hide
    async def internal_command(user_id: int, command: str) -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        if not owner.auth.verify(request.headers.get(HEADER), request.path, body):
            return _error(401, "unauthorized", "This call is not signed by an instance.")
        if command not in COMMANDS:
            return _error(404, "not_found", "No such command.")
        if not owner.is_owner(user_id):
            return _error(421, "not_owner", "This instance does not own the user now.")
        try:
            return await _run(owner, user_id, command, json.loads(body or b"{}"))
        except (KeyError, ValueError, TypeError) as error:
            return _error(400, "bad_request", f"bad internal call: {type(error).__name__}")

    app.add_url_rule(
        "/internal/users/<int:user_id>/<command>",
        view_func=internal_command,
        methods=["POST"],
        endpoint="internal_command",
    )


async def _run(owner: OwnerSide, user_id: int, command: str, body: dict[str, Any]) -> Response:
    if command == "credentials":
        await owner.local.credentials_changed(user_id)
        return Response("{}", 200, content_type="application/json")
    handle = owner.local.actor(user_id)
    if handle is None:
        return _error(409, "no_exchange_keys", "Store your exchange keys first.")
    try:
        with trio.fail_after(OWNER_TIMEOUT):
            result = await _on_handle(owner, handle, user_id, command, body)
    except NoExchangeKeys as error:
        return _error(409, "no_exchange_keys", error.reason)
    except ActorUnavailable as error:
        return _error(503, "unavailable", error.reason, retry_after=error.retry_after)
    except OrderRejected as error:
        return _error(400, "order_rejected", error.message, exchange_code=error.code)
    except OrderNotFoundError as error:
        return _error(404, "order_not_found", str(error), order_id=error.order_id)
    except trio.TooSlowError:
        return _error(503, "unavailable", "The exchange did not answer in time.", retry_after=2)
    return Response(json.dumps(result), 200, content_type="application/json")


async def _on_handle(
    owner: OwnerSide, handle: Any, user_id: int, command: str, body: dict[str, Any]
) -> dict[str, Any]:
    if command == "place":
        return {"order": order_to_wire(await handle.place(request_from_wire(body)))}
    if command == "cancel":
        return {"order": order_to_wire(await handle.cancel(int(body["order_id"])))}
    if command == "cancel_all":
        return {"canceled": await handle.cancel_all(str(body["symbol"]))}
    if command == "account":
        return {"data": await handle.get_account()}
    if command == "leverage":
        return {"data": await handle.change_leverage(str(body["symbol"]), int(body["leverage"]))}
    policy = await owner.store.get_poll_policy(user_id)  # poll_policy: stored by the caller
    if policy is not None:
        handle.tell(SetPollPolicy(policy))
    return {}


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    body = {"status": "error", "error": {"code": code, "message": message, **extra}}
    return Response(json.dumps(body), status, content_type="application/json")
