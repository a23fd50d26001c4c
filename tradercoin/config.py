"""Settings: CLI flags, environment variables (``TRADERCOIN_*``), the config file, defaults.

Precedence, highest first: a command's flag, the environment variable ``TRADERCOIN_<NAME>``,
the key ``<name>`` of ``config.toml`` in the data directory (:mod:`tradercoin.home`), the
default. The database and the dev master key file default to files in the data directory, so
every command finds the same ones from any working directory. ``tradercoin config show`` lists
every setting with its value and where it came from (secrets only as set/unset).

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
    "REGISTRATION_MODES",
    "SECRETS",
    "ConfigError",
    "PollPolicy",
    "Resolved",
    "Settings",
    "parse_duration",
    "resolve",
    "split_address",
]

EXCHANGE_URLS = {
    "binance": ("https://fapi.binance.com", "wss://fstream.binance.com"),
    "binance-testnet": ("https://testnet.binancefuture.com", "wss://fstream.binancefuture.com"),
}


REGISTRATION_MODES = ("open", "invite", "closed")
STREAM_MODES = ("hub", "per-user")
CLUSTER_MODES = ("auto", "on", "off")
_INTS = frozenset(
    {
        "port",
        "sim_port",
        "weight_budget_per_minute",
        "registrations_per_address",
        "registrations_per_hour",
    }
)


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
    log_format: str = "text"
    event_retention: float = 7 * 24 * 3600.0  # order events kept for /ws resumes (seconds)
    stream_mode: str = "hub"  # hub: listenKeys share a few connections | per-user: one each
    registration: str = "open"  # open | invite | closed
    allowed_hosts: tuple[str, ...] = ()  # Host headers beyond this machine's own names
    metrics_address: str | None = None  # HOST:PORT serving /metrics to anyone who reaches it
    registrations_per_address: int = 10  # new accounts per address per hour
    registrations_per_hour: int = 600  # new accounts per hour, all addresses together
    # scale-out (docs/cluster.md): on PostgreSQL several instances share the users
    cluster: str = "auto"  # auto: on for PostgreSQL, off for SQLite | on | off
    instance_id: str | None = None  # this instance's name in the cluster (default: generated)
    advertise_url: str | None = None  # how other instances reach this one (default: its bind)
    egress_address: str | None = None  # local address the exchange traffic leaves from

    @property
    def clustered(self) -> bool:
        """Whether this instance shares its users with others (ownership in PostgreSQL)."""
        if self.cluster == "auto":
            return self.database_url.startswith("postgresql")
        return self.cluster == "on"

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
        """Flags (non-``None`` ``overrides``), ``TRADERCOIN_*`` variables, the data
        directory's config file, defaults: see :func:`resolve`."""
        return resolve(env, **overrides).settings

    def validate(self) -> None:
        if not (0 < self.port < 65536):
            raise ConfigError(f"port: {self.port} is out of range 1-65535")
        if not self.uses_simulator:
            self.exchange_urls()
        if self.stream_mode not in STREAM_MODES:
            raise ConfigError(f"stream_mode: {self.stream_mode!r} is not 'hub' or 'per-user'")
        if self.cluster not in CLUSTER_MODES:
            raise ConfigError(f"cluster: {self.cluster!r} is not auto, on or off")
        if self.clustered and not self.database_url.startswith("postgresql"):
            raise ConfigError(
                "cluster: several instances need PostgreSQL; SQLite serves one instance "
                "(set TRADERCOIN_CLUSTER=off or use a postgresql+psycopg:// database URL)"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: {self.log_format!r} is not 'text' or 'json'")
        if self.registration not in REGISTRATION_MODES:
            raise ConfigError(
                f"registration: {self.registration!r} is not open, invite or closed; set "
                "TRADERCOIN_REGISTRATION or --registration"
            )
        if self.metrics_address is not None:
            split_address(self.metrics_address, name="metrics_address")
        if "://" not in self.database_url:
            raise ConfigError(
                "database_url: the value is not a URL (no '://'; not shown, it may hold a "
                "password); use sqlite:///path/to.db or postgresql+psycopg://user@host/db"
            )


def _convert(name: str, raw: str, where: str) -> Any:
    """``raw`` text as the setting's type; ``where`` names it in errors (env var or file)."""
    if name in _INTS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not an integer") from None
    if name == "weight_safety_margin":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a number") from None
    if name == "event_retention":
        return parse_duration(raw, name=where)
    if name == "master_key_file":
        return Path(raw).expanduser()
    if name in ("allowed_origins", "allowed_hosts"):
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    if name in ("poll_interval", "poll_fast_interval", "poll_reconcile_interval"):
        return parse_duration(raw, name=where)
    if name == "poll_fast_notional":
        return _decimal(raw, where)
    return raw


def split_address(text: str, *, name: str = "address") -> tuple[str, int]:
    """``"127.0.0.1:9090"`` -> ``("127.0.0.1", 9090)``; ``[::1]:9090`` too."""
    host, _, port = text.rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{name}: {text!r} is not HOST:PORT, e.g. 127.0.0.1:9090")
    return host.strip("[]"), int(port)


def _decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}: {raw!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{name}: must be a non-negative number, got {raw!r}")
    return value


# --- where each setting comes from ---------------------------------------------------------

SECRETS = frozenset({"master_key"})
_POLL = {
    "poll_interval": "interval",
    "poll_fast_interval": "fast_interval",
    "poll_fast_notional": "fast_notional",
    "poll_reconcile_interval": "reconcile_interval",
}
NAMES: tuple[str, ...] = tuple(
    name
    for field in dataclasses.fields(Settings)
    for name in ((*_POLL,) if field.name == "poll" else (field.name,))
)
_ALIASES = {"poll_interval": ("ORDER_CHECK_INTERVAL",)}  # the seed's name


@dataclass(frozen=True, slots=True)
class Resolved:
    """The settings, the data directory, and each setting's source: ``flag``, ``env``,
    ``config file`` or ``default``."""

    settings: Settings
    home: Path
    home_source: str
    config_file: Path
    sources: Mapping[str, str]

    def shown(self, name: str) -> str:
        """The value of setting ``name`` as ``config show`` prints it (secrets as set/unset,
        a database password as ***)."""
        if name in SECRETS:
            return "set" if getattr(self.settings, name) else "unset"
        if name in _POLL:
            return str(getattr(self.settings.poll, _POLL[name]))
        value = getattr(self.settings, name)
        if name == "database_url":
            return _hide_password(value)
        if isinstance(value, tuple):
            return ",".join(value)
        return "" if value is None else str(value)


def resolve(
    env: Mapping[str, str] | None = None, *, home: str | None = None, **overrides: Any
) -> Resolved:
    """Every setting from the flags in ``overrides`` (``None`` = not given), ``env``, the
    config file in the data directory, and the defaults, in that order of precedence.

    Raises:
        ConfigError: a malformed value (the message names the variable or the file's key), an
            unknown key in the config file, or an unreadable config file.
    """
    from tradercoin.home import (
        CONFIG_NAME,
        DATABASE_NAME,
        KEY_NAME,
        HomeError,
        read_config_file,
        resolve_home,
    )

    env = os.environ if env is None else env
    directory, home_source = resolve_home(env, home)
    config_file = directory / CONFIG_NAME
    try:
        from_file = read_config_file(config_file)
    except HomeError as error:
        raise ConfigError(str(error)) from None
    unknown = sorted(set(from_file) - set(NAMES))
    if unknown:
        raise ConfigError(
            f"{config_file}: unknown setting {unknown[0]!r}; `tradercoin config show` lists them"
        )
    defaults = {
        "database_url": f"sqlite:///{directory / DATABASE_NAME}",
        "master_key_file": directory / KEY_NAME,
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in NAMES:
        found = _lookup(name, overrides, env, from_file, config_file)
        if found is None:
            sources[name] = "default"
            if name in defaults:
                values[name] = defaults[name]
            continue
        values[name], sources[name] = found
    settings = _build(values)
    settings.validate()
    return Resolved(settings, directory, home_source, config_file, sources)


def _lookup(
    name: str,
    overrides: Mapping[str, Any],
    env: Mapping[str, str],
    from_file: Mapping[str, str],
    config_file: Path,
) -> tuple[Any, str] | None:
    """``(value, source)`` of one setting, or None when only the default applies."""
    if overrides.get(name) is not None:
        return overrides[name], "flag"
    for variable in (f"TRADERCOIN_{name.upper()}", *_ALIASES.get(name, ())):
        raw = env.get(variable)
        if raw:
            return _convert(name, raw, variable), "env"
    if name in from_file:
        return _convert(name, from_file[name], f"{config_file}: {name}"), "config file"
    return None


def _build(values: dict[str, Any]) -> Settings:
    poll = {_POLL[name]: values.pop(name) for name in list(values) if name in _POLL}
    return Settings(**values, poll=PollPolicy(**poll))


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
