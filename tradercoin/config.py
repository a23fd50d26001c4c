"""Settings: environment variables (``TRADERCOIN_*``) and CLI flags, validated once at start.

A bad value raises :class:`ConfigError` with one line that says what is wrong and how to fix
it; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "EXCHANGE_URLS",
    "ConfigError",
    "PollPolicy",
    "Settings",
    "parse_duration",
]

EXCHANGE_URLS = {
    "binance": ("https://fapi.binance.com", "wss://fstream.binance.com"),
    "binance-testnet": ("https://testnet.binancefuture.com", "wss://fstream.binancefuture.com"),
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, *, name: str = "duration") -> float:
    """``"5"``, ``"5s"``, ``"250ms"``, ``"2m"``, ``"1h"`` -> seconds (positive)."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{name}: {text!r} is not a duration; use e.g. 5s, 250ms, 2m, 7d")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{name}: must be greater than zero, got {text!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often one user's pending orders are polled (seconds; notional in quote currency).

    ``interval`` applies to ordinary pending orders, ``fast_interval`` to those whose notional
    is at least ``fast_notional``, ``reconcile_interval`` to all of them while the user-data
    stream is healthy. ``Settings.poll`` is the default every user has until an operator
    sets one.
    """

    interval: float = 5.0
    fast_interval: float = 1.0
    fast_notional: Decimal = Decimal(10_000)
    reconcile_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///./tradercoin.db"
    master_key: str | None = dataclasses.field(default=None, repr=False)  # never shown
    master_key_file: Path = Path("./tradercoin.key")
    exchange: str = "sim"
    exchange_ws: str | None = None  # the user-stream base of a URL exchange (default: derived)
    host: str = "127.0.0.1"
    port: int = 8080
    sim_host: str = "127.0.0.1"
    sim_port: int = 0
    poll: PollPolicy = PollPolicy()
    weight_budget_per_minute: int = 2400
    weight_safety_margin: float = 0.10
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    event_retention: float = 7 * 24 * 3600.0  # order events kept for /ws resumes (seconds)

    @property
    def uses_simulator(self) -> bool:
        return self.exchange == "sim"

    def exchange_urls(self) -> tuple[str, str]:
        """(REST base, WebSocket base) for a real exchange; the simulator's are set at start."""
        if self.exchange in EXCHANGE_URLS:
            return EXCHANGE_URLS[self.exchange]
        if self.exchange.startswith(("http://", "https://")):
            rest = self.exchange.rstrip("/")
            ws = self.exchange_ws or "ws" + rest[len("http") :]
            return rest, ws.rstrip("/")
        raise ConfigError(
            f"exchange: {self.exchange!r} is not 'sim', 'binance', 'binance-testnet' or an "
            "http(s) URL; set TRADERCOIN_EXCHANGE or --exchange"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``TRADERCOIN_*`` variables, then apply non-``None`` CLI overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"TRADERCOIN_{field.name.upper()}")
            if raw is not None and field.name != "poll":
                values[field.name] = _convert(field.name, raw)
        values["poll"] = _poll_from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not (0 < self.port < 65536):
            raise ConfigError(f"port: {self.port} is out of range 1-65535")
        if not self.uses_simulator:
            self.exchange_urls()
        if "://" not in self.database_url:
            raise ConfigError(
                "database_url: the value is not a URL (no '://'; not shown, it may hold a "
                "password); use sqlite:///path/to.db or postgresql+psycopg://user@host/db"
            )


def _convert(name: str, raw: str) -> Any:
    if name in ("port", "sim_port", "weight_budget_per_minute"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"TRADERCOIN_{name.upper()}: {raw!r} is not an integer") from None
    if name == "weight_safety_margin":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"TRADERCOIN_{name.upper()}: {raw!r} is not a number") from None
    if name == "event_retention":
        return parse_duration(raw, name="TRADERCOIN_EVENT_RETENTION")
    if name == "master_key_file":
        return Path(raw)
    if name == "allowed_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    return raw


def _poll_from_env(env: Mapping[str, str]) -> PollPolicy:
    """``TRADERCOIN_POLL_INTERVAL`` and siblings; the seed's ``ORDER_CHECK_INTERVAL`` too."""
    base = PollPolicy()
    interval = env.get("TRADERCOIN_POLL_INTERVAL") or env.get("ORDER_CHECK_INTERVAL")
    fast = env.get("TRADERCOIN_POLL_FAST_INTERVAL")
    reconcile = env.get("TRADERCOIN_POLL_RECONCILE_INTERVAL")
    notional = env.get("TRADERCOIN_POLL_FAST_NOTIONAL")
    return PollPolicy(
        interval=parse_duration(interval, name="TRADERCOIN_POLL_INTERVAL")
        if interval
        else base.interval,
        fast_interval=parse_duration(fast, name="TRADERCOIN_POLL_FAST_INTERVAL")
        if fast
        else base.fast_interval,
        fast_notional=_decimal(notional, "TRADERCOIN_POLL_FAST_NOTIONAL")
        if notional
        else base.fast_notional,
        reconcile_interval=parse_duration(reconcile, name="TRADERCOIN_POLL_RECONCILE_INTERVAL")
        if reconcile
        else base.reconcile_interval,
    )


def _decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}: {raw!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{name}: must be a non-negative number, got {raw!r}")
    return value
