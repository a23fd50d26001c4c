"""Operator routes: the actors table, per-user poll policies, the rate governor, the user
streams and the cluster.

Every route needs an operator; a user gets 403.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from quart import Quart, Response
from quart_schema import document_request, tag

from tradercoin.cluster.ownership import Ownership
from tradercoin.config import PollPolicy
from tradercoin.http.auth import authenticate
from tradercoin.http.context import HttpContext, context
from tradercoin.http.errors import ApiError, json_response
from tradercoin.http.schemas import PollPolicyBody, read_body
from tradercoin.orders import MAX_ID

__all__ = ["jsonable", "policy_to_wire", "register_routes"]


def jsonable(value: Any) -> Any:
    """Dataclasses, mappings and lists with Decimals as strings and keys as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def policy_to_wire(policy: PollPolicy) -> dict[str, Any]:
    return {
        "interval": policy.interval,
        "fast_interval": policy.fast_interval,
        "fast_notional": format(policy.fast_notional, "f"),
        "reconcile_interval": policy.reconcile_interval,
    }


def _supervisor(ctx: HttpContext) -> Any:
    if ctx.supervisor is None:
        raise ApiError(503, "unavailable", "the supervisor is not running")
    return ctx.supervisor


@tag(["admin"])
async def actors() -> Response:
    """The supervisor's status table: one row per actor, with the username."""
    await authenticate(operator=True)
    ctx = context()
    rows = []
    stretch = _stretches(ctx)
    for status in _supervisor(ctx).statuses():
        row = jsonable(status)
        user = await ctx.users.get(status.user_id)
        row["username"] = None if user is None else user.username
        # open /ws connections (browser tabs); the actor's own count also holds the server's
        # page cache and sessions that left but were not sent anything since
        row["sessions"] = ctx.sessions.count(status.user_id)
        policy = await _policy_of(ctx, status.user_id)
        row["policy_interval"] = policy.interval
        row["interval_reason"] = interval_reason(status, policy, stretch)
        rows.append(row)
    stats = jsonable(_supervisor(ctx).statistics())
    return json_response({"status": "success", "data": rows, "statistics": stats})


def _stretches(ctx: HttpContext) -> tuple[float, float]:
    if ctx.governor is None:
        return 1.0, 1.0
    stats = ctx.governor.statistics()
    return stats.stretch_normal, stats.stretch_fast


def interval_reason(status: Any, policy: PollPolicy, stretch: tuple[float, float]) -> str:
    """Why the actor's interval in force is what it is, in a few words."""
    if status.pending_orders == 0:
        return "no open orders: nothing to check"
    if status.state == "parked":
        return "keys rejected: not checking until they change"
    effective = status.effective_interval or 0.0
    if status.stream_state == "healthy":
        base, why = policy.reconcile_interval, "stream healthy: reconcile only"
    elif effective < policy.interval and abs(effective - policy.fast_interval) < 1e-6:
        return f"fast order (notional >= {policy.fast_notional:,f})"
    else:
        base, why = policy.interval, "policy"
    factor = effective / base if base else 1.0
    if factor > 1.01 and max(stretch) > 1.01:
        return f"{why}, stretched x{factor:.1f} by the governor (weight budget)"
    return why


async def _policy_of(ctx: HttpContext, user_id: int) -> PollPolicy:
    if user_id > MAX_ID or await ctx.users.get(user_id) is None:
        raise ApiError(404, "user_not_found", f"no user {user_id}")
    policy: PollPolicy | None = await ctx.store.get_poll_policy(user_id)
    return policy if policy is not None else ctx.settings.poll


@tag(["admin"])
async def get_poll_policy(user_id: int) -> Response:
    """A user's poll policy (the default until an operator sets one)."""
    await authenticate(operator=True)
    policy = await _policy_of(context(), user_id)
    return json_response({"status": "success", "data": policy_to_wire(policy)})


@tag(["admin"])
@document_request(PollPolicyBody)
async def put_poll_policy(user_id: int) -> Response:
    """Change a user's poll policy; omitted fields keep their value. Applies at the user's
    next poll deadline."""
    operator = await authenticate(operator=True)
    body = await read_body(PollPolicyBody)
    ctx = context()
    current = await _policy_of(ctx, user_id)
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    if "interval" in changes and "fast_interval" not in changes:
        changes["fast_interval"] = min(current.fast_interval, changes["interval"])
    policy = dataclasses.replace(current, **changes)
    if policy.fast_interval > policy.interval:
        raise ApiError(400, "invalid_policy", "fast_interval must not exceed interval")
    await _supervisor(ctx).set_poll_policy(user_id, policy, updated_by=operator.id)
    return json_response({"status": "success", "data": policy_to_wire(policy)})


@tag(["admin"])
async def governor() -> Response:
    """The shared exchange weight budget and how it is being spent."""
    await authenticate(operator=True)
    ctx = context()
    if ctx.governor is None:
        raise ApiError(503, "unavailable", "no rate governor in this service")
    return json_response({"status": "success", "data": jsonable(ctx.governor.statistics())})


@tag(["admin"])
async def streams() -> Response:
    """The user-data streams: the exchange connections the stream hub holds, the listenKeys
    on each, handshakes in the exchange's 5-minute window, refusals, drops and gaps, suspect
    (zombie) keys now and in all, and the time from start to full stream coverage."""
    await authenticate(operator=True)
    ctx = context()
    if ctx.hub is None:
        data: dict[str, Any] = {"mode": ctx.settings.stream_mode, "hub": None}
    else:
        budget = ctx.hub.budget.statistics()
        data = {
            "mode": "hub",
            "hub": jsonable(ctx.hub.statistics()),
            "handshake_budget": jsonable(budget),
        }
    return json_response({"status": "success", "data": data})


@tag(["admin"])
async def cluster() -> Response:
    """The instances sharing this database (id, address, healthy, how many users each owns
    and which (``user_ids``), seconds since their heartbeat), this instance's id, and its
    ownership counters (claims, handovers, lease losses, writes the fence refused; null for
    a single instance). Other instances' users are as of this instance's last round (about a
    second old)."""
    await authenticate(operator=True)
    supervisor = _supervisor(context())
    directory = supervisor.directory
    if isinstance(directory, Ownership):
        statistics = directory.statistics()
        owned = directory.users_by_instance()
    else:  # alone: every actor here is this instance's
        statistics = None
        owned = {directory.instance_id: sorted(s.user_id for s in supervisor.statuses())}
    instances = []
    for info in directory.instances():
        users = owned.get(info.id, [])
        instances.append(jsonable(info) | {"users": len(users), "user_ids": users})
    data = {
        "instance_id": directory.instance_id,
        "clustered": statistics is not None,
        "instances": instances,
        "statistics": jsonable(statistics),
    }
    return json_response({"status": "success", "data": data})


def register_routes(app: Quart) -> None:
    app.add_url_rule("/api/admin/actors", view_func=actors, methods=["GET"])
    rule = "/api/admin/users/<int:user_id>/poll-policy"
    app.add_url_rule(rule, view_func=get_poll_policy, methods=["GET"])
    app.add_url_rule(rule, view_func=put_poll_policy, methods=["PUT"])
    app.add_url_rule("/api/admin/governor", view_func=governor, methods=["GET"])
    app.add_url_rule("/api/admin/streams", view_func=streams, methods=["GET"])
    app.add_url_rule("/api/admin/cluster", view_func=cluster, methods=["GET"])
