"""Binance's answers as typed errors: the whole mapping from a non-2xx answer (or none) to
an :class:`~tradercoin.exchange.errors.ExchangeError` subclass, in one place.

The rule that matters most: on a *write* (placing or cancelling orders) an answer that does
not say what happened leaves the outcome unknown (:class:`UnknownOutcome`: resolve by
querying the client order id, never by sending again); on a read the same answer is just
:class:`Unavailable`. Sources: ``shared/reference/binance-futures.md`` §4.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    OrderRateLimited,
    RateLimited,
    Unavailable,
    UnknownOutcome,
)

__all__ = ["DEFAULT_BAN_MS", "DEFAULT_RETRY_AFTER", "error_from_response"]

DEFAULT_RETRY_AFTER: Final = 60.0
DEFAULT_BAN_MS: Final = 120_000  # bans start at 2 minutes

_CREDENTIAL_CODES = frozenset({-2014, -2015, -1022})
_NOT_FOUND_CODES = frozenset({-2013, -2011})
_UNKNOWN_OUTCOME_CODES = frozenset({-1006, -1007})
_UNAVAILABLE_CODES = frozenset({-1001, -1008})
_RATE_CODES = frozenset({-1003})
_ORDER_RATE_CODE: Final = -1015
_WRITE_UNKNOWN_STATUSES = frozenset({500, 502, 503, 504})
_ORDER_LIMIT = re.compile(r"(\d+)\s+orders?\s+per\s+(\d*)\s*(second|minute|sec|min|s|m)", re.I)
_BANNED_UNTIL = re.compile(r"banned until (\d+)")


def _error_body(text: str) -> tuple[int | None, str | None]:
    """``(code, msg)`` of a Binance error body; ``None`` for whatever is absent or odd."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    code, msg = obj.get("code"), obj.get("msg")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return code, msg if isinstance(msg, str) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _banned_until(msg: str) -> int | None:
    match = _BANNED_UNTIL.search(msg)
    return int(match.group(1)) if match else None


def _rate_limited(msg: str, headers: Mapping[str, str], now_ms: int, **kw: Any) -> RateLimited:
    after = _retry_after(headers)
    until = _banned_until(msg)
    if after is None and until is not None:
        after = max(0.0, (until - now_ms) / 1000)
    return RateLimited(msg, retry_after=DEFAULT_RETRY_AFTER if after is None else after, **kw)


def _ip_banned(msg: str, headers: Mapping[str, str], now_ms: int, **kw: Any) -> IPBanned:
    until = _banned_until(msg)
    if until is None:
        after = _retry_after(headers)
        until = now_ms + (DEFAULT_BAN_MS if after is None else int(after * 1000))
    return IPBanned(msg, until=until, **kw)


def _is_unknown_503(status: int, msg: str) -> bool:
    return status == 503 and msg.lower().startswith("unknown error")


def _write_outcome_unknown(status: int, code: int | None, msg: str) -> bool:
    """Binance: a write answered with a 5xx, or timed out (408 without a code), may have
    been executed; only a query tells. The exceptions are the 5xx answers Binance documents
    as certain failures (reference §4, 503 variants B-D): -1001 "Internal error; unable to
    process your request", -1008 "Request throttled", and "Service Unavailable."."""
    if code in _UNKNOWN_OUTCOME_CODES or _is_unknown_503(status, msg):
        return True
    if code in _UNAVAILABLE_CODES or msg.strip().lower() == "service unavailable.":
        return False
    return status in _WRITE_UNKNOWN_STATUSES or (status == 408 and code is None)


def _order_rate_limited(
    msg: str, headers: Mapping[str, str], now_ms: int, **kw: Any
) -> OrderRateLimited:
    """-1015. The message states the limit ("... current limit is 300 orders per 10
    SECOND."); the wait is Retry-After, else the rest of that window on the exchange's grid."""
    limit = window = None
    match = _ORDER_LIMIT.search(msg)
    if match is not None:
        unit = 60.0 if match.group(3).lower().startswith("m") else 1.0
        limit, window = int(match.group(1)), unit * int(match.group(2) or 1)
    after = _retry_after(headers)
    if after is None:
        span = int((window or 10.0) * 1000)
        after = (span - now_ms % span) / 1000
    return OrderRateLimited(msg, retry_after=after, limit=limit, window=window, **kw)


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, write: bool, now_ms: int
) -> ExchangeError:
    """The typed error for a non-2xx answer; never raises.

    ``write`` says the request placed or cancelled orders: only then can a 500, 502, 503 or
    504 (with or without a code), -1006, -1007 or a code-less 408 mean it may have happened
    (:class:`UnknownOutcome`); on a read those are :class:`Unavailable`. -1015 is the
    account's order rate (:class:`OrderRateLimited`), not the IP's weight. ``headers`` must
    look names up case-insensitively (httpx does).
    """
    text = body.decode("utf-8", "replace")
    code, msg = _error_body(text)
    kw: dict[str, Any] = {"status": status, "code": code}
    if code is None:
        kw["body"] = text
    message = msg if msg is not None else f"HTTP {status}: {text[:200]}"
    if status == 418:
        return _ip_banned(message, headers, now_ms, **kw)
    if code == _ORDER_RATE_CODE:
        return _order_rate_limited(message, headers, now_ms, **kw)
    if status == 429 or code in _RATE_CODES:
        return _rate_limited(message, headers, now_ms, **kw)
    if code in _CREDENTIAL_CODES:
        return InvalidCredentials(message, **kw)
    if code in _NOT_FOUND_CODES:
        return OrderNotFound(message, **kw)
    if write and _write_outcome_unknown(status, code, msg or ""):
        return UnknownOutcome(message, **kw)
    if code in _UNKNOWN_OUTCOME_CODES:
        return Unavailable(message, **kw)
    if code in _UNAVAILABLE_CODES or status >= 500 or status in (403, 408):
        return Unavailable(message, **kw)
    if code is not None:
        return InvalidRequest(message, **kw)
    return ExchangeError(f"unexpected answer: {message}", **kw)


def transport_error(exc: httpx.HTTPError, *, write: bool) -> ExchangeError:
    """A request that got no answer. Only the exception's class name is kept (no URL)."""
    name = type(exc).__name__
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if write and not never_sent:
        return UnknownOutcome(f"no answer to a write ({name}): outcome unknown")
    return Unavailable(f"no answer ({name})")


def unexpected_answer(response: httpx.Response, why: str, *, write: bool) -> ExchangeError:
    """A 2xx whose body is not what the endpoint documents. On a write it may have worked."""
    text = response.content.decode("utf-8", "replace")
    kind = UnknownOutcome if write else ExchangeError
    return kind(f"unexpected answer: {why}", status=response.status_code, body=text)
