"""The simulator over sockets: Hypercorn (trio) for REST and trio-websocket for the user
stream on a second port."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio_websocket
from hypercorn.config import Config
from hypercorn.trio import serve

from tradercoin.exchange.sim.rest import ConnectionDropped, RestApp

if TYPE_CHECKING:
    from tradercoin.exchange.sim.simulator import Simulator

__all__ = ["SimAddress", "serve_simulator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimAddress:
    rest_url: str  # e.g. http://127.0.0.1:9100 (python-binance: FUTURES_URL = rest_url + "/fapi")
    ws_url: str  # e.g. ws://127.0.0.1:9101 (streams at ws_url + "/private/ws?listenKey=...")


async def serve_simulator(
    sim: Simulator,
    host: str,
    port: int,
    *,
    ws_port: int | None = None,
    task_status: trio.TaskStatus[SimAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sim`` until cancelled; starts ``sim.run`` too unless it already runs.

    REST listens on ``port`` (0: any free port), the stream on ``ws_port`` (default: the
    REST port + 1, or any free port when ``port`` is 0). Reports the two base URLs through
    ``task_status`` once both listen. Raises OSError when a port is taken.
    """
    async with trio.open_nursery() as nursery:
        if not sim.running:
            await nursery.start(sim.run)
        binds = await nursery.start(
            serve, RestApp(sim.handle_http, in_process=False), _config(host, port)
        )
        rest_url = str(binds[0])
        bound_port = int(rest_url.rsplit(":", 1)[1])
        wanted = ws_port if ws_port is not None else (bound_port + 1 if port else 0)
        server = await nursery.start(_serve_ws, sim, host, wanted)
        ws_url = f"ws://{_host_for_url(host)}:{server.port}"
        logger.debug("simulator REST on %s, user stream on %s", rest_url, ws_url)
        task_status.started(SimAddress(rest_url, ws_url))


async def _serve_ws(
    sim: Simulator,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[trio_websocket.WebSocketServer],
) -> None:
    await trio_websocket.serve_websocket(
        sim.handle_websocket, host, port, ssl_context=None, task_status=task_status
    )


class _HideDrops(logging.Filter):
    """Injected drops abort the ASGI call on purpose: not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


_ERROR_LOG = logging.getLogger("tradercoin.exchange.sim.hypercorn")
_ERROR_LOG.addFilter(_HideDrops())


def _config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{_host_for_url(host)}:{port}"]
    config.accesslog = None
    config.errorlog = _ERROR_LOG
    config.keep_alive_timeout = 75
    config.backlog = 2048  # thousands of simulated users may connect at once
    return config


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
