"""The stream hub wired into a test system the way the supervisor will wire it (one hub per
process, every actor's stream runner :func:`~tradercoin.actors.hubstream.run_hub_stream`),
for benchmarks, until the supervisor builds it itself."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.hub import StreamHub
from tradercoin.actors.hubstream import run_hub_stream
from tradercoin.actors.parts import ActorConfig
from tradercoin.actors.user import UserActor
from tradercoin.testing import TestSystem

__all__ = ["HubWiring"]


class HubWiring:
    """Pass :meth:`actor_class` to the supervisor, then run :meth:`running` before any user
    is added (actors look the hub up when their stream starts)."""

    def __init__(self) -> None:
        self.hub: StreamHub | None = None
        self._governor: Any = None

    def actor_class(self) -> type[UserActor]:
        wiring = self

        class HubActor(UserActor):
            def __init__(self, *args: Any, config: ActorConfig, **kw: Any) -> None:
                runner = functools.partial(wiring.run_stream)
                super().__init__(*args, config=dataclasses.replace(config, stream=runner), **kw)

        return HubActor

    async def run_stream(self, client: Any, *, user_id: int, sink: Any) -> None:
        assert self.hub is not None, "HubWiring.running must be entered before users start"
        await run_hub_stream(
            client, user_id=user_id, sink=sink, hub=self.hub, governor=self._governor
        )

    @asynccontextmanager
    async def running(self, system: TestSystem) -> AsyncIterator[StreamHub]:
        async with trio.open_nursery() as nursery:
            hub = StreamHub(
                "ws://sim", budget=ConnectionBudget(), connect=system.sim.open_websocket
            )
            await nursery.start(hub.run)
            self.hub, self._governor = hub, system.governor
            yield hub
            nursery.cancel_scope.cancel()
