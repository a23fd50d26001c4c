"""The typed errors of the exchange adapter.

Actors know the exchange only through :class:`~tradercoin.exchange.protocol.ExchangeClient`
and these errors; the adapter hides no retries: it reports, and the caller decides.
"""

from __future__ import annotations

__all__ = [
    "ExchangeError",
    "IPBanned",
    "InvalidCredentials",
    "InvalidRequest",
    "OrderNotFound",
    "OrderRateLimited",
    "RateLimited",
    "Unavailable",
    "UnknownOutcome",
]


class ExchangeError(Exception):
    """Anything the exchange (or the way to it) answered that is not a result.

    ``status`` is the HTTP status (0 when no response came), ``code`` and ``msg`` the Binance
    error body where there was one, ``body`` the first 200 characters of an unexpected body.
    Never carries keys, secrets or signatures.
    """

    def __init__(
        self,
        msg: str,
        *,
        status: int = 0,
        code: int | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.status = status
        self.code = code
        self.body = None if body is None else body[:200]

    def __str__(self) -> str:
        parts = [self.msg]
        if self.code is not None:
            parts.insert(0, f"code={self.code}")
        if self.status:
            parts.insert(0, f"http={self.status}")
        return " ".join(parts)


class RateLimited(ExchangeError):
    """HTTP 429 (-1003): stop sending until ``retry_after`` seconds have passed."""

    def __init__(self, msg: str, *, retry_after: float, **kw: object) -> None:
        super().__init__(msg, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OrderRateLimited(ExchangeError):
    """-1015: too many new orders for this account (not the IP's weight): only this
    account's places must wait ``retry_after`` seconds; ``limit``/``window`` are the limit
    the exchange stated (e.g. 300 per 10 s) when it said one."""

    def __init__(
        self,
        msg: str,
        *,
        retry_after: float,
        limit: int | None = None,
        window: float | None = None,
        **kw: object,
    ) -> None:
        super().__init__(msg, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.limit = limit
        self.window = window


class IPBanned(ExchangeError):
    """HTTP 418: this IP is banned until ``until`` (epoch ms)."""

    def __init__(self, msg: str, *, until: int, **kw: object) -> None:
        super().__init__(msg, **kw)  # type: ignore[arg-type]
        self.until = until


class InvalidCredentials(ExchangeError):
    """-2014, -2015, -1022: the user's keys are wrong, lack permissions, or sign badly."""


class OrderNotFound(ExchangeError):
    """-2013 (no such order) or -2011 (cancel of an order that is not open)."""


class InvalidRequest(ExchangeError):
    """Any other -1xxx / -4xxx / -5xxx refusal: the request itself is wrong."""


class UnknownOutcome(ExchangeError):
    """On a write: a 500/502/503/504 (with or without a code), -1006, -1007, a code-less 408,
    or a timeout after sending: it may have happened.

    Resolve by querying the client order id; never by sending again.
    """


class Unavailable(ExchangeError):
    """On a read: 5xx, 403 (WAF), 408, -1008 and network faults; on a write: 403, -1008, a
    408 with a code, and a connection never made: it did not happen; retry later."""
