"""Request-weight and order-count limits with Binance's answers: 429 then a 418 ban.

Windows are fixed intervals of the server's clock (the minute, the ten seconds), as the
``X-MBX-USED-WEIGHT-1M`` header counts them. An IP that keeps sending after ``ban_after``
429s in one minute is banned: 2 minutes the first time, doubling up to 3 days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradercoin.exchange.sim.errors import ApiError

__all__ = ["Limits", "RateLimiter", "order_count_headers"]

MINUTE_MS = 60_000
TEN_SECONDS_MS = 10_000
FIRST_BAN_MS = 120_000
MAX_BAN_MS = 3 * 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    weight_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200
    ban_after: int = 10

    def exchange_info(self) -> list[dict[str, Any]]:
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.orders_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 10,
                "limit": self.orders_per_10s,
            },
        ]


@dataclass(slots=True)
class _Window:
    start: int = -1
    count: int = 0

    def add(self, now_ms: int, size: int, amount: int) -> int:
        start = now_ms - now_ms % size
        if start != self.start:
            self.start, self.count = start, 0
        self.count += amount
        return self.count


@dataclass(slots=True)
class _IpState:
    weight: _Window = field(default_factory=_Window)
    rejected: _Window = field(default_factory=_Window)
    banned_until: int = 0
    bans: int = 0
    total: int = 0


class RateLimiter:
    """Per-IP weight, per-account order counts, and the ban escalation."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._ips: dict[str, _IpState] = {}
        self._orders: dict[str, tuple[_Window, _Window]] = {}
        self._order_limits: dict[str, tuple[int, int]] = {}
        self.weight_used = 0

    def charge(self, ip: str, weight: int, now_ms: int) -> int:
        """Count ``weight`` for ``ip``; returns the minute's used weight.

        Raises:
            ApiError: 418 while banned, 429 over the limit (both -1003, with Retry-After);
                the error carries the used weight in ``used``.
        """
        state = self._ips.get(ip) or self._ips.setdefault(ip, _IpState())
        used = state.weight.add(now_ms, MINUTE_MS, weight)
        self.weight_used += weight
        state.total += weight
        if state.banned_until > now_ms:
            raise self._banned(ip, state, now_ms)
        if used <= self.limits.weight_per_minute:
            return used
        if state.rejected.add(now_ms, MINUTE_MS, 1) > self.limits.ban_after:
            state.banned_until = now_ms + min(FIRST_BAN_MS << state.bans, MAX_BAN_MS)
            state.bans += 1
            raise self._banned(ip, state, now_ms)
        retry = (MINUTE_MS - now_ms % MINUTE_MS + 999) // 1000
        raise ApiError(
            -1003,
            f"Too many requests; current limit is {self.limits.weight_per_minute} requests per "
            "minute. Please use the websocket for live updates to avoid polling the API.",
            429,
            retry_after=retry,
        )

    def used(self, ip: str, now_ms: int) -> int:
        state = self._ips.get(ip)
        return state.weight.add(now_ms, MINUTE_MS, 0) if state else 0

    def weight_by_ip(self, now_ms: int) -> dict[str, tuple[int, int]]:
        """``{ip: (weight in the current minute, weight since start)}``: each client address
        has its own budget, as on the exchange."""
        return {ip: (self.used(ip, now_ms), state.total) for ip, state in self._ips.items()}

    @staticmethod
    def _banned(ip: str, state: _IpState, now_ms: int) -> ApiError:
        return ApiError(
            -1003,
            f"Way too many requests; IP({ip}) banned until {state.banned_until}. Please use the "
            "websocket for live updates to avoid bans.",
            418,
            retry_after=(state.banned_until - now_ms + 999) // 1000,
        )

    def set_order_limits(self, api_key: str, per_10s: int, per_minute: int) -> None:
        """The account's own ORDERS limits (Binance sets them per account: ``GET
        /fapi/v1/rateLimit/order``). Raises ValueError for a limit below 1."""
        if per_10s < 1 or per_minute < 1:
            raise ValueError(f"order limits must be at least 1, not {per_10s}/{per_minute}")
        self._order_limits[api_key] = (per_10s, per_minute)

    def order_limits(self, api_key: str) -> tuple[int, int]:
        """The account's ``(per 10 s, per minute)`` order limits."""
        default = (self.limits.orders_per_10s, self.limits.orders_per_minute)
        return self._order_limits.get(api_key, default)

    def count_order(self, api_key: str, now_ms: int) -> tuple[int, int]:
        """Count one new order for the account; returns the 10 s and 1 min counts.

        Raises:
            ApiError: -1015 (HTTP 429, Retry-After: the rest of the window) over either of
                the account's limits; its ``headers`` carry the counts.
        """
        ten, minute = self._orders.get(api_key) or self._orders.setdefault(
            api_key, (_Window(), _Window())
        )
        counts = ten.add(now_ms, TEN_SECONDS_MS, 1), minute.add(now_ms, MINUTE_MS, 1)
        per_10s, per_minute = self.order_limits(api_key)
        error = None
        if counts[0] > per_10s:
            error = _too_many_orders(per_10s, "TEN_SECONDS", now_ms, TEN_SECONDS_MS)
        elif counts[1] > per_minute:
            error = _too_many_orders(per_minute, "MINUTE", now_ms, MINUTE_MS)
        if error is not None:
            error.headers = order_count_headers(counts)
            raise error
        return counts

    def order_counts(self, api_key: str, now_ms: int) -> tuple[int, int]:
        windows = self._orders.get(api_key)
        if windows is None:
            return 0, 0
        return windows[0].add(now_ms, TEN_SECONDS_MS, 0), windows[1].add(now_ms, MINUTE_MS, 0)


def order_count_headers(counts: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    """``X-MBX-ORDER-COUNT-10S`` and ``-1M`` for an account's ``(10 s, 1 min)`` counts."""
    return [
        (b"x-mbx-order-count-10s", str(counts[0]).encode()),
        (b"x-mbx-order-count-1m", str(counts[1]).encode()),
    ]


def _too_many_orders(limit: int, interval: str, now_ms: int, size: int) -> ApiError:
    return ApiError(
        -1015,
        f"Too many new orders; current limit is {limit} orders per {interval}.",
        429,
        retry_after=(size - now_ms % size + 999) // 1000,
    )
