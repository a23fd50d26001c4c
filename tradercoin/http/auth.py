"""Accounts and the current-user guard.

Two ways to be authenticated, one token: the page gets it in an HttpOnly, SameSite=Strict
cookie; API clients send it as ``Authorization: Bearer <token>``. A mutation authenticated by
the cookie must also carry a JSON content type (a cross-site form cannot send one) and, when the
browser sends an ``Origin``, an allowed one: together they make mutations CSRF-safe.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, Response, request
from quart_schema import document_request, tag

from tradercoin.exchange.protocol import Credentials
from tradercoin.http.accounts import normalise_username, password_problem, username_problem
from tradercoin.http.audit import security_event
from tradercoin.http.context import HttpContext, context
from tradercoin.http.errors import ApiError, json_response
from tradercoin.http.guards import origin_allowed
from tradercoin.http.invites import hash_code
from tradercoin.http.schemas import CredentialsBody, LoginBody, RegisterBody, read_body
from tradercoin.http.security import Busy, SessionToken
from tradercoin.logs import set_log_user
from tradercoin.store.errors import DuplicateUser, StoreError
from tradercoin.store.models import Role, User
from tradercoin.store.security import InvalidInvite

__all__ = [
    "COOKIE",
    "authenticate",
    "cookie_value",
    "origin_allowed",
    "register_routes",
    "request_token",
    "user_to_wire",
]

log = logging.getLogger(__name__)

COOKIE = "tc_session"
_MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def user_to_wire(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role.value}


def cookie_value(header: str, name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (for the ASGI fast paths)."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def request_token() -> tuple[str | None, bool]:
    """The presented token and whether it came from the cookie (``None``: none presented)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), False
    cookie = request.cookies.get(COOKIE)
    return cookie, cookie is not None


async def authenticate(*, operator: bool = False) -> User:
    """The user this request acts for.

    Raises:
        ApiError: 401 without a valid token, 403 for a cross-site cookie mutation or a user
            on an operator route.
    """
    ctx = context()
    token, from_cookie = request_token()
    session = ctx.tokens.verify(token) if token else None
    if session is None:
        raise ApiError(401, "unauthorized", "log in first (cookie or Bearer token)")
    if from_cookie and request.method in _MUTATIONS:
        _check_csrf(ctx, session.user_id)
    user = await ctx.users.get(session.user_id)
    if user is None:
        raise ApiError(401, "unauthorized", "this account no longer exists")
    set_log_user(user.id)  # this request's log lines carry it (tradercoin.logs)
    if operator and user.role is not Role.OPERATOR:
        security_event("forbidden", address=_address(), user_id=user.id, route=request.path)
        raise ApiError(403, "forbidden", "operators only")
    return user


def _address() -> str:
    return request.remote_addr or "?"


def _check_csrf(ctx: HttpContext, user_id: int | None) -> None:
    if not request.is_json:
        security_event("csrf_refused", address=_address(), user_id=user_id, reason="not json")
        raise ApiError(403, "csrf", "cookie-authenticated changes must send application/json")
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(
        origin, request.host, request.scheme, ctx.settings.allowed_origins
    ):
        security_event("csrf_refused", address=_address(), user_id=user_id, origin=origin[:100])
        raise ApiError(403, "csrf", "this origin may not change anything here")


def _session_response(user: User, status: int) -> Response:
    ctx = context()
    token = ctx.tokens.issue(user.id)
    response = json_response(
        {"status": "success", "data": user_to_wire(user), "token": token}, status
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=ctx.tokens.lifetime_ms // 1000,
        httponly=True,
        samesite="Strict",
        secure=request.scheme == "https",
        path="/",
    )
    return response


# ----------------------------------------------------------------------------- routes


@tag(["auth"])
@document_request(RegisterBody)
async def register() -> Response:
    """Create an account (role ``user``); answers the user, a token, and sets the cookie.

    Limited per address and overall (429 with Retry-After); ``--registration invite`` needs
    an ``invite`` code, ``closed`` refuses (403). The username is normalised (NFKC, case
    folded); reserved names, and passwords that are common or too easy to guess, are refused
    with a 400 that says why. In simulator mode the new user gets simulated keys at once.
    """
    _check_origin_if_any()
    body = await read_body(RegisterBody)
    ctx = context()
    address = _address()
    username = _registration_allowed(ctx, body, address)
    if await ctx.store.get_user_by_name(username) is not None:
        raise ApiError(409, "username_taken", "that username is taken")
    problem = password_problem(username, body.password)
    if problem is not None:
        raise ApiError(400, "weak_password", problem)
    user = await _create_user(ctx, username, body)
    ctx.registrations.created(address)
    ctx.users.put(user)
    if ctx.provision_keys is not None:
        await ctx.provision_keys(user.id)
    security_event("registered", address=address, user_id=user.id, username=user.username)
    return _session_response(user, 201)


def _registration_allowed(ctx: HttpContext, body: RegisterBody, address: str) -> str:
    """The normalised username, once the mode, the limits and the name's rules allow it."""
    mode = ctx.settings.registration
    if mode == "closed" or (mode == "invite" and not body.invite):
        security_event("registration_refused", address=address, reason=mode)
        message = "registration is closed here" if mode == "closed" else "an invitation is needed"
        raise ApiError(403, "registration_closed", message)
    wait = ctx.registrations.wait_time(address)
    if wait > 0:
        ctx.registrations.refused += 1
        security_event("registration_refused", address=address, reason="rate")
        raise ApiError(
            429,
            "too_many_registrations",
            "too many accounts were created recently; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    username = normalise_username(body.username)
    problem = username_problem(username)
    if problem is not None:
        raise ApiError(400, "invalid_username", problem)
    return username


async def _create_user(ctx: HttpContext, username: str, body: RegisterBody) -> User:
    try:
        password_hash = await ctx.passwords.hash(body.password)
    except Busy:
        raise ApiError(
            503,
            "busy",
            "too many accounts are being created; try again shortly",
            headers={"Retry-After": "5"},
        ) from None
    try:
        if ctx.settings.registration == "invite":
            code = hash_code(body.invite or "")
            return await ctx.records.create_user_with_invite(username, password_hash, code)
        return await ctx.store.create_user(username, password_hash, Role.USER)
    except DuplicateUser:
        raise ApiError(409, "username_taken", "that username is taken") from None
    except InvalidInvite:
        security_event("registration_refused", address=_address(), reason="bad invite")
        raise ApiError(
            403, "invalid_invite", "that invitation is unknown, used or expired"
        ) from None


@tag(["auth"])
@document_request(LoginBody)
async def login() -> Response:
    """Log in; answers the user and a token, and sets the cookie.

    Throttled (429 with Retry-After) per account and address, per address, and for
    addresses that failed while an account or the whole service is under attack; an
    address that has not failed is never refused (see :class:`LoginThrottle`).
    """
    _check_origin_if_any()
    body = await read_body(LoginBody)
    ctx = context()
    address = _address()
    username = normalise_username(body.username)
    _check_throttle(ctx, username, address)
    user = await ctx.store.get_user_by_name(username)
    if user is None and username != body.username:
        user = await ctx.store.get_user_by_name(body.username)  # created before normalising
    ok = await _verify(ctx, user, body.password, address)
    if user is None or not ok:
        await _failed_login(ctx, username, address, user)
        raise ApiError(401, "bad_credentials", "wrong username or password")
    ctx.throttle.succeeded(username, address)
    ctx.metrics.logins.labels("ok").inc()
    ctx.users.put(user)
    security_event("login", address=address, user_id=user.id, username=user.username)
    return _session_response(user, 200)


async def _verify(ctx: HttpContext, user: User | None, password: str, address: str) -> bool:
    """The password check, queued fairly (an address that failed recently waits among its
    kind, never ahead of a clean one; see :class:`Passwords`)."""
    try:
        return await ctx.passwords.verify(
            user.password_hash if user else None, password, suspect=ctx.throttle.suspect(address)
        )
    except Busy:
        ctx.metrics.logins.labels("throttled").inc()
        security_event("login_throttled", address=address, reason="queue")
        raise ApiError(
            429,
            "too_many_attempts",
            "too many logins are waiting; try again shortly",
            headers={"Retry-After": "5"},
        ) from None


def _check_throttle(ctx: HttpContext, username: str, address: str) -> None:
    wait = ctx.throttle.wait_time(username, address)
    if wait > 0:
        ctx.throttle.refused += 1
        ctx.metrics.logins.labels("throttled").inc()
        security_event("login_throttled", address=address, username=username)
        raise ApiError(
            429,
            "too_many_attempts",
            "too many failed logins; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )


async def _failed_login(ctx: HttpContext, username: str, address: str, user: User | None) -> None:
    """Count it in memory at once, then in the store (so a restart remembers it)."""
    ctx.throttle.failed(username, address)
    ctx.metrics.logins.labels("failed").inc()
    user_id = None if user is None else user.id
    security_event("login_failed", address=address, user_id=user_id, username=username)
    try:
        await ctx.records.record_login_failure(username, address)
    except StoreError as error:
        log.warning("a failed login could not be stored: %s", error)


@tag(["auth"])
async def logout() -> Response:
    """Revoke the presented token (durably: a restart does not bring it back) and clear the
    cookie. A cookie logout passes the same CSRF checks as every cookie change."""
    ctx = context()
    token, from_cookie = request_token()
    session: SessionToken | None = ctx.tokens.verify(token) if token else None
    if session is not None:
        if from_cookie:
            _check_csrf(ctx, session.user_id)
        await ctx.records.revoke_token(session.nonce, session.user_id, session.expires)
        ctx.tokens.revoke(session)
        security_event("logout", address=_address(), user_id=session.user_id)
    response = json_response({"status": "success"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
    return response


@tag(["auth"])
async def me() -> Response:
    """The logged-in user."""
    user = await authenticate()
    return json_response({"status": "success", "data": user_to_wire(user)})


@tag(["credentials"])
@document_request(CredentialsBody)
async def put_credentials() -> Response:
    """Check the keys with a signed call to the exchange, then store them (encrypted at rest);
    the actor picks them up at once. Keys the exchange refuses are not stored (400
    ``keys_rejected`` saying why); when the exchange cannot be asked they are stored and
    ``check.checked`` is false."""
    user = await authenticate()
    body = await read_body(CredentialsBody)
    ctx = context()
    creds = Credentials(api_key=body.api_key, api_secret=body.api_secret)
    check = await ctx.check_keys(creds) if ctx.check_keys is not None else None
    if check is not None and check.checked and not check.can_read:
        raise ApiError(400, "keys_rejected", check.message, field="api_key")
    await ctx.store.set_credentials(user.id, creds, testnet=body.testnet)
    security_event(
        "keys_changed", address=_address(), user_id=user.id, key_last4=creds.api_key[-4:]
    )
    await _keys_changed(ctx, user.id)
    return await _credentials_answer(user, None if check is None else check.to_wire())


@tag(["credentials"])
async def get_credentials() -> Response:
    """What is stored: the key's last 4 characters, never the keys."""
    user = await authenticate()
    return await _credentials_answer(user)


@tag(["credentials"])
async def delete_credentials() -> Response:
    """Remove the user's keys; the actor stops."""
    user = await authenticate()
    ctx = context()
    await ctx.store.delete_credentials(user.id)
    security_event("keys_deleted", address=_address(), user_id=user.id)
    await _keys_changed(ctx, user.id)
    return await _credentials_answer(user)


async def _keys_changed(ctx: HttpContext, user_id: int) -> None:
    """Start, reload or stop the user's actor; their cached pages follow it from now on."""
    ctx.orders_cache.forget(user_id)
    if ctx.supervisor is not None:
        await ctx.supervisor.credentials_changed(user_id)


async def _credentials_answer(user: User, check: dict[str, Any] | None = None) -> Response:
    info = await context().store.credential_info(user.id)
    data = None
    if info is not None:
        data = {
            "key_last4": info.key_last4,
            "testnet": info.testnet,
            "created_at": info.created_at,
            "rotated_at": info.rotated_at,
        }
        if check is not None:
            data["check"] = check
    return json_response({"status": "success", "data": data})


def _check_origin_if_any() -> None:
    origin = request.headers.get("Origin")
    ctx = context()
    if origin and not origin_allowed(
        origin, request.host, request.scheme, ctx.settings.allowed_origins
    ):
        security_event("origin_refused", address=_address(), origin=origin[:100])
        raise ApiError(403, "csrf", "this origin may not log in here")


def register_routes(app: Quart) -> None:
    app.add_url_rule("/api/auth/register", view_func=register, methods=["POST"])
    app.add_url_rule("/api/auth/login", view_func=login, methods=["POST"])
    app.add_url_rule("/api/auth/logout", view_func=logout, methods=["POST"])
    app.add_url_rule("/api/auth/me", view_func=me, methods=["GET"])
    app.add_url_rule("/api/credentials", view_func=get_credentials, methods=["GET"])
    app.add_url_rule("/api/credentials", view_func=put_credentials, methods=["PUT"])
    app.add_url_rule("/api/credentials", view_func=delete_credentials, methods=["DELETE"])
