"""The flags of ``tradercoin serve``: each names its environment variable and default, and
becomes the setting of the same name (:func:`tradercoin.config.resolve`, flags first)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tradercoin.config import ConfigError

__all__ = ["check_egress_address", "serve_options"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--host", default=None, help="Bind address [env TRADERCOIN_HOST; 127.0.0.1]."),
    click.option("--port", type=int, default=None, help="Port [env TRADERCOIN_PORT; 8080]."),
    click.option(
        "--exchange",
        default=None,
        metavar="sim|binance|binance-testnet|URL",
        help="Exchange [env TRADERCOIN_EXCHANGE; sim: the built-in simulator].",
    ),
    click.option(
        "--database-url",
        default=None,
        metavar="URL",
        help="Database URL [env TRADERCOIN_DATABASE_URL; default tradercoin.db in the data "
        "dir]. On PostgreSQL several instances share the users (docs/cluster.md).",
    ),
    click.option(
        "--registration",
        type=click.Choice(["open", "invite", "closed"]),
        default=None,
        help="Who may create an account [env TRADERCOIN_REGISTRATION; open]; invite: with a "
        "code from `tradercoin users invite`.",
    ),
    click.option(
        "--metrics-address",
        default=None,
        metavar="HOST:PORT",
        help="Serve /metrics to anyone on this separate address [env "
        "TRADERCOIN_METRICS_ADDRESS]; on the main port /metrics needs an operator's token.",
    ),
    click.option(
        "--cluster",
        type=click.Choice(["auto", "on", "off"]),
        default=None,
        help="Share the users with other instances on the same PostgreSQL [env "
        "TRADERCOIN_CLUSTER; auto: on for PostgreSQL, off for SQLite].",
    ),
    click.option(
        "--instance-id",
        default=None,
        metavar="ID",
        help="This instance's name in the cluster [env TRADERCOIN_INSTANCE_ID; generated].",
    ),
    click.option(
        "--advertise-url",
        default=None,
        metavar="URL",
        help="How the other instances reach this one, e.g. http://10.0.0.5:8080 [env "
        "TRADERCOIN_ADVERTISE_URL; the bind address and port].",
    ),
    click.option(
        "--egress-address",
        default=None,
        metavar="ADDR",
        help="Local IP address all exchange traffic leaves from: each instance its own "
        "exchange IP, weight budget and connections [env TRADERCOIN_EGRESS_ADDRESS; the "
        "system's choice].",
    ),
)


def serve_options(func: F) -> F:
    """Apply every ``serve`` flag to ``func`` (each arrives as a keyword, None when absent)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def check_egress_address(address: str | None) -> None:
    """Refuse to start with an egress address this machine cannot send from (else every
    exchange request would fail later, one by one).

    Raises:
        ConfigError: not an IP address, or not one of this machine's.
    """
    if address is None:
        return
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        raise ConfigError(
            f"egress_address: {address!r} is not an IP address; give one of this machine's, "
            "e.g. 10.0.0.5 (TRADERCOIN_EGRESS_ADDRESS or --egress-address)"
        ) from None
    with socket.socket(family) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            raise ConfigError(
                f"egress_address: cannot send from {address} ({error.strerror}); give an "
                "address of this machine (`ip -br addr` lists them)"
            ) from None
