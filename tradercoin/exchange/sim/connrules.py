"""Binance's WebSocket connection rules for the user stream (reference §5, §6).

* **Attempts**: at most ``max_attempts`` accepted handshakes per ``attempt_window`` seconds
  (sliding) per client IP (Binance: 300 per 5 minutes). Beyond, the handshake is refused
  with HTTP 429 and ``Retry-After`` (the seconds until the oldest attempt leaves the
  window). An IP refused more than ``ban_after`` times in one minute is banned, as REST
  does: every handshake gets 418 for 2 minutes the first time, doubling up to 3 days.
  Whether a WebSocket ban also bans REST is not documented; here it does not.
* **Streams**: at most ``max_streams`` listenKeys on one connection (Binance: 1024), in the
  URL or added by ``SUBSCRIBE``.
* **Messages**: at most ``max_messages`` incoming data messages in any second per
  connection (Binance: 10); one more closes the connection (1008 "too many messages").
  Control frames (ping, pong) are answered by trio-websocket and not counted here.
* **Lifetime**: 24 h per connection (``StreamConfig.lifetime``, enforced by the stream).

:class:`ConnectionRules` keeps the counts; :meth:`ConnectionRules.statistics` reports them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import trio

from tradercoin.exchange.sim.ratelimit import FIRST_BAN_MS, MAX_BAN_MS

__all__ = ["ConnectionLimits", "ConnectionRuleStatistics", "ConnectionRules", "Refused"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_attempts: int = 300
    attempt_window: float = 300.0
    max_streams: int = 1024
    max_messages: int = 10
    ban_after: int = 10


@dataclass(frozen=True, slots=True)
class Refused:
    """A handshake to refuse: ``status`` (429 or 418), the JSON body and Retry-After."""

    status: int
    body: bytes
    retry_after: int


@dataclass(frozen=True, slots=True)
class ConnectionRuleStatistics:
    connections_open: int
    attempts_in_window: dict[str, int]  # client IP -> accepted handshakes in the window now
    max_attempts_in_window: int  # the most any IP had in one window since start
    attempts_total: int
    refusals: int  # handshakes answered 429
    banned_refusals: int  # handshakes answered 418
    bans: int
    closed_for_messages: int
    streams_per_connection: list[int]  # open connections' listenKey counts, largest first


@dataclass(slots=True)
class _Ip:
    attempts: deque[float] = field(default_factory=deque)
    refused_minute: int = -1
    refused_count: int = 0
    banned_until: float = -1.0
    bans: int = 0


class ConnectionRules:
    """The per-IP attempt window and ban, and the counts the statistics report."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._ips: dict[str, _Ip] = {}
        self._peak = self._total = self._refusals = self._banned_refusals = 0
        self._bans = self._closed_for_messages = 0

    def admit(self, ip: str) -> Refused | None:
        """Count one handshake attempt from ``ip``; ``None`` when it may connect."""
        now = trio.current_time()
        state = self._ips.get(ip) or self._ips.setdefault(ip, _Ip())
        if state.banned_until > now:
            return self._banned(ip, state, now)
        window = self._expire(state, now)
        if len(window) < self.limits.max_attempts:
            window.append(now)
            self._total += 1
            self._peak = max(self._peak, len(window))
            return None
        return self._refuse(ip, state, now)

    def _expire(self, state: _Ip, now: float) -> deque[float]:
        window = state.attempts
        while window and window[0] + self.limits.attempt_window <= now:
            window.popleft()
        return window

    def _refuse(self, ip: str, state: _Ip, now: float) -> Refused:
        minute = int(now // 60)
        if minute != state.refused_minute:
            state.refused_minute, state.refused_count = minute, 0
        state.refused_count += 1
        if state.refused_count > self.limits.ban_after:
            state.banned_until = now + min(FIRST_BAN_MS << state.bans, MAX_BAN_MS) / 1000
            state.bans += 1
            self._bans += 1
            return self._banned(ip, state, now)
        self._refusals += 1
        retry = max(1, _ceil(state.attempts[0] + self.limits.attempt_window - now))
        limit = self.limits.max_attempts
        window = _ceil(self.limits.attempt_window)
        message = f"Too many connection attempts; at most {limit} per {window}s per IP."
        return Refused(429, _body(-1003, message), retry)

    def _banned(self, ip: str, state: _Ip, now: float) -> Refused:
        self._banned_refusals += 1
        message = f"Way too many connection attempts; IP({ip}) banned."
        return Refused(418, _body(-1003, message), max(1, _ceil(state.banned_until - now)))

    def too_many_streams(self, count: int) -> bool:
        return count > self.limits.max_streams

    def closed_for_messages(self) -> None:
        self._closed_for_messages += 1

    def statistics(self, streams_per_connection: list[int]) -> ConnectionRuleStatistics:
        now = trio.current_time()
        in_window = {ip: len(self._expire(s, now)) for ip, s in self._ips.items()}
        return ConnectionRuleStatistics(
            connections_open=len(streams_per_connection),
            attempts_in_window={ip: n for ip, n in in_window.items() if n},
            max_attempts_in_window=self._peak,
            attempts_total=self._total,
            refusals=self._refusals,
            banned_refusals=self._banned_refusals,
            bans=self._bans,
            closed_for_messages=self._closed_for_messages,
            streams_per_connection=sorted(streams_per_connection, reverse=True),
        )


class MessageRate:
    """Incoming data messages of one connection in the last second (sliding)."""

    def __init__(self, limit: int) -> None:
        self._times: deque[float] = deque(maxlen=limit + 1)

    def exceeded(self) -> bool:
        """Count one message now; ``True`` when it is one too many for its second."""
        now = trio.current_time()
        self._times.append(now)
        return len(self._times) == self._times.maxlen and now - self._times[0] < 1.0


def _body(code: int, message: str) -> bytes:
    return b'{"code":%d,"msg":"%s"}' % (code, message.encode())


def _ceil(seconds: float) -> int:
    return int(-(-seconds // 1))
