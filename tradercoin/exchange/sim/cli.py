"""What ``tradercoin sim`` runs: build the simulator, print its accounts, serve."""

from __future__ import annotations

import gc
import json
import logging
import sys
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial

import trio

from tradercoin.clock import system_clock
from tradercoin.exchange.sim.account import DEFAULT_STARTING_BALANCE
from tradercoin.exchange.sim.connrules import ConnectionLimits
from tradercoin.exchange.sim.ratelimit import Limits
from tradercoin.exchange.sim.server import serve_simulator
from tradercoin.exchange.sim.simulator import Simulator
from tradercoin.exchange.sim.stream import StreamConfig

__all__ = ["SimOptions", "parse_balance", "run_sim"]

logger = logging.getLogger("tradercoin.sim")


@dataclass(frozen=True, slots=True)
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 9100
    ws_port: int | None = None
    accounts: int = 0
    seed: int = 0
    fill_latency: float = 2.0
    weight_limit: int = 2400
    stream_lifetime: float = 86400.0
    rules: ConnectionLimits = field(default_factory=ConnectionLimits)
    starting_balance: Decimal = DEFAULT_STARTING_BALANCE


def parse_balance(text: str) -> Decimal | None:
    """A starting balance in USDT (finite, 0 or more), or None when ``text`` is not one."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def run_sim(options: SimOptions) -> None:
    """Blocks until interrupted. Raises OSError when a port cannot be bound."""
    try:
        trio.run(_serve, options)
    except BaseExceptionGroup as group:
        bind_errors, others = group.split(OSError)
        if bind_errors is None or others is not None:
            raise
        first: BaseException = bind_errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _serve(options: SimOptions) -> None:
    sim = Simulator(
        clock=system_clock(),
        seed=options.seed,
        market_fill_latency=options.fill_latency,
        limits=Limits(weight_per_minute=options.weight_limit),
        stream=StreamConfig(lifetime=options.stream_lifetime, rules=options.rules),
        starting_balance=options.starting_balance,
    )
    for _ in range(options.accounts):
        api_key, api_secret = sim.create_account()
        sys.stdout.write(json.dumps({"api_key": api_key, "api_secret": api_secret}) + "\n")
    sys.stdout.flush()
    gc.freeze()  # the accounts live as long as the process: keep them out of GC scans
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            partial(serve_simulator, sim, options.host, options.port, ws_port=options.ws_port)
        )
        logger.info("serving on %s (REST) and %s (user stream)", address.rest_url, address.ws_url)
