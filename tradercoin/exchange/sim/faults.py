"""Injected faults: what can go wrong, where, for whom, and how many times.

A fault is matched by path (exact, e.g. ``/fapi/v1/order``) and account (API key); either
may be ``None`` for "any". ``count`` is how many requests (or stream events) it hits, or
``None`` until :meth:`FaultTable.clear`.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "FaultKind", "FaultTable", "garble", "garble_event", "server_error"]


class FaultKind(enum.StrEnum):
    # REST, answered before the request is processed (nothing happens on the exchange)
    UNAVAILABLE = "unavailable"  # 503 "Service Unavailable."
    THROTTLED = "throttled"  # 503 -1008 (reduce-only orders exempt)
    WAF_HTML = "waf_html"  # 403 with an HTML body
    LATENCY = "latency"  # sleep ``seconds`` on the simulator's clock, then process
    DROP_REQUEST = "drop_request"  # the connection drops; nothing processed
    RATE_LIMITED = "rate_limited"  # 429 -1003, Retry-After ``seconds`` (at least 1)
    BANNED = "banned"  # 418 -1003, "banned until" now + ``seconds``
    # REST, answered after the request was really processed
    UNKNOWN_ERROR = "unknown_error"  # 503 "Unknown error, please check your request..."
    TIMEOUT = "timeout"  # 408 -1007
    NO_CODE_5XX = "no_code_5xx"  # 503 JSON without ``code``
    DROP_RESPONSE = "drop_response"  # processed, then the connection drops
    HTTP_500 = "http_500"  # 500 JSON -1000 (an internal error after the work was done)
    HTTP_502 = "http_502"  # 502 with a proxy's HTML page
    HTTP_504 = "http_504"  # 504 with a proxy's HTML page (the backend answered too late)
    # REST, processed, then the 200 answer is mangled (a broken proxy or a bug upstream)
    GARBLED_HTML = "garbled_html"  # 200 with an HTML page instead of JSON
    TRUNCATED_JSON = "truncated_json"  # 200 with the JSON cut in half
    WRONG_TYPES = "wrong_types"  # 200, strings and numbers swapped in every object
    MISSING_FIELDS = "missing_fields"  # 200, every object keeps only its first field
    VISIBILITY_DELAY = "visibility_delay"  # a new order is -2013 to queries for ``seconds``
    # user stream (matched by account; path is ignored)
    STREAM_DUPLICATE = "stream_duplicate"  # each ORDER_TRADE_UPDATE is sent twice
    STREAM_DELAY = "stream_delay"  # each ORDER_TRADE_UPDATE is sent ``seconds`` late
    STREAM_DROP = "stream_drop"  # ORDER_TRADE_UPDATE events are not sent
    STREAM_SILENT = "stream_silent"  # no events at all (pings go on)
    STREAM_GARBLED = "stream_garbled"  # each ORDER_TRADE_UPDATE's order has wrong field types
    STREAM_REORDER = "stream_reorder"  # after an order's update, its previous one is sent again
    STREAM_BURST = "stream_burst"  # the next ``count`` updates are held, then sent in one write
    # immediate actions (count and path ignored)
    LISTEN_KEY_EXPIRED = "listen_key_expired"  # expire the account's listenKey now
    DISCONNECT = "disconnect"  # close the account's stream connections now
    STREAM_ZOMBIE = "stream_zombie"  # the account's listenKey stops delivering, silently
    CLOCK_SKEW = "clock_skew"  # the server's clock runs ``seconds`` ahead (negative: behind)


BEFORE = frozenset(
    {
        FaultKind.UNAVAILABLE,
        FaultKind.THROTTLED,
        FaultKind.WAF_HTML,
        FaultKind.LATENCY,
        FaultKind.DROP_REQUEST,
        FaultKind.RATE_LIMITED,
        FaultKind.BANNED,
    }
)
GARBLED = frozenset(
    {
        FaultKind.GARBLED_HTML,
        FaultKind.TRUNCATED_JSON,
        FaultKind.WRONG_TYPES,
        FaultKind.MISSING_FIELDS,
    }
)
SERVER_ERRORS = frozenset({FaultKind.HTTP_500, FaultKind.HTTP_502, FaultKind.HTTP_504})
AFTER = (
    frozenset(
        {
            FaultKind.UNKNOWN_ERROR,
            FaultKind.TIMEOUT,
            FaultKind.NO_CODE_5XX,
            FaultKind.DROP_RESPONSE,
        }
    )
    | GARBLED
    | SERVER_ERRORS
)
STREAM = frozenset(
    {
        FaultKind.STREAM_DUPLICATE,
        FaultKind.STREAM_DELAY,
        FaultKind.STREAM_DROP,
        FaultKind.STREAM_SILENT,
        FaultKind.STREAM_GARBLED,
    }
)
REORDER = frozenset({FaultKind.STREAM_REORDER})
BURST = frozenset({FaultKind.STREAM_BURST})
IMMEDIATE = frozenset(
    {
        FaultKind.LISTEN_KEY_EXPIRED,
        FaultKind.DISCONNECT,
        FaultKind.STREAM_ZOMBIE,
        FaultKind.CLOCK_SKEW,
    }
)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or (
            self.seconds < 0 and self.kind is not FaultKind.CLOCK_SKEW
        ):
            raise ValueError(f"seconds must be finite and >= 0, not {self.seconds}")

    @classmethod
    def parse(cls, kind: str, seconds: float = 0.0) -> Fault:
        """Raises ValueError for an unknown kind or bad seconds."""
        return cls(FaultKind(kind), float(seconds))


@dataclass(slots=True)
class _Rule:
    fault: Fault
    path: str | None
    account: str | None
    remaining: int | None
    hits: int = 0


class FaultTable:
    """The active faults, consumed as they hit."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self.hits = 0

    def add(
        self, fault: Fault, *, path: str | None, account: str | None, count: int | None
    ) -> None:
        self._rules.append(_Rule(fault, path, account, count))

    def clear(self) -> None:
        self._rules.clear()

    def __bool__(self) -> bool:
        return bool(self._rules)

    def never_hit(self) -> list[Fault]:
        """The armed faults that have not hit anything yet (tests check that theirs fired)."""
        return [rule.fault for rule in self._rules if rule.hits == 0]

    def armed(self, kinds: frozenset[FaultKind], path: str | None, account: str | None) -> bool:
        """True while a fault of ``kinds`` would hit (nothing is used up)."""
        return any(r.fault.kind in kinds and _matches(r, path, account) for r in self._rules)

    def take(
        self, kinds: frozenset[FaultKind], path: str | None, account: str | None
    ) -> Fault | None:
        """The first matching fault of ``kinds``, counted as used; ``None`` when none."""
        for rule in self._rules:
            if rule.fault.kind not in kinds or not _matches(rule, path, account):
                continue
            rule.hits += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
            self.hits += 1
            return rule.fault
        return None


def _matches(rule: _Rule, path: str | None, account: str | None) -> bool:
    return (rule.path is None or rule.path == path) and (
        rule.account is None or rule.account == account
    )


GARBLED_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
_PROXY_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>"
    "\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_INTERNAL_ERROR = b'{"code":-1000,"msg":"An unknown error occured while processing the request."}'


def server_error(kind: FaultKind) -> tuple[int, bytes, bytes]:
    """``(status, content type, body)`` of a SERVER_ERRORS fault. Each is answered after the
    request was processed, so, as Binance says of every 5XX, "the execution status is
    UNKNOWN and could have been a success" (reference §4)."""
    if kind is FaultKind.HTTP_500:
        return 500, b"application/json", _INTERNAL_ERROR
    title = "502 Bad Gateway" if kind is FaultKind.HTTP_502 else "504 Gateway Time-out"
    return int(title[:3]), b"text/html", _PROXY_PAGE.format(title).encode()


def garble(kind: FaultKind, payload: Any) -> bytes:
    """The body a GARBLED fault answers with instead of ``payload`` (a 200 nonetheless)."""
    if kind is FaultKind.GARBLED_HTML:
        return GARBLED_PAGE
    if kind is FaultKind.TRUNCATED_JSON:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return raw[: max(1, len(raw) // 2)]
    mangle = _swap_types if kind is FaultKind.WRONG_TYPES else _first_field_only
    return json.dumps(mangle(payload), separators=(",", ":")).encode()


def garble_event(event: dict[str, Any]) -> dict[str, Any]:
    """A user-stream event whose order object has every field of the wrong type."""
    return {**event, "o": _swap_types(event.get("o"))}


def _swap_types(value: Any) -> Any:
    """Strings become numbers, numbers strings, booleans and null objects, all the way down."""
    if isinstance(value, dict):
        return {k: _swap_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_types(v) for v in value]
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return {}
    return str(value)


def _first_field_only(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(list(value.items())[:1])
    if isinstance(value, list):
        return [_first_field_only(v) for v in value]
    return value
