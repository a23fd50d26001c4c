"""The supervisor in a cluster: actors run only for users this instance owns (a directory
decides), start and stop when ownership says so, and an actor that finds it no longer owns
its user ends quietly before touching the exchange or the store.

The oracle is the simulator's record of requests (what reached the exchange) and the store."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tradercoin.actors import ActorUnavailable
from tradercoin.cluster.directory import InstanceInfo, NotOwner
from tradercoin.testing import open_test_system


class Directory:
    """A cluster directory a test edits by hand: this instance owns ``owned``."""

    instance_id = "here"

    def __init__(self) -> None:
        self.owned: set[int] = set()
        self.refusals = 0

    def owns(self, user_id: int) -> bool:
        return user_id in self.owned

    def owner_of(self, user_id: int) -> InstanceInfo | None:
        return InstanceInfo("here", "", True, len(self.owned), 0.0) if self.owns(user_id) else None

    def fence(self, user_id: int) -> None:
        if user_id not in self.owned:
            self.refusals += 1
            raise NotOwner(f"not the owner of user {user_id}")

    def instances(self) -> list[InstanceInfo]:
        return []


def orders_at_exchange(system: Any) -> list[Any]:
    return [r for r in system.requests if r.method == "POST" and r.path == "/fapi/v1/order"]


async def test_only_adopted_users_get_actors_and_a_released_one_is_gone(
    autojump_clock: trio.abc.Clock,
) -> None:
    directory = Directory()
    async with open_test_system(supervisor_options={"directory": directory}) as system:
        alice = await system.add_user("alice")
        assert system.supervisor.actor(alice.user_id) is None  # not owned: no actor here
        directory.owned.add(alice.user_id)
        handle = system.supervisor.adopt(alice.user_id)
        await handle.up.wait()
        assert system.supervisor.adopt(alice.user_id) is handle  # idempotent
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert order.status == "new" and len(orders_at_exchange(system)) == 1
        directory.owned.clear()
        await system.supervisor.release(alice.user_id)
        assert system.supervisor.actor(alice.user_id) is None
        assert handle.done.is_set()
        with pytest.raises(ActorUnavailable, match="stopped"):
            await handle.place(None)  # type: ignore[arg-type]
        # new keys for a user owned elsewhere start nothing here
        await system.supervisor.credentials_changed(alice.user_id)
        assert system.supervisor.actor(alice.user_id) is None


async def test_an_actor_that_lost_its_user_ends_quietly_before_the_store_and_the_exchange(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Directory()
    async with open_test_system(supervisor_options={"directory": directory}) as system:
        alice = await system.add_user("alice")
        directory.owned.add(alice.user_id)
        await system.supervisor.adopt(alice.user_id).up.wait()
        handle = alice.actor
        directory.owned.clear()  # another instance took alice over
        sent_before = len(system.requests)
        with pytest.raises(ActorUnavailable, match="moved to another instance"):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await handle.done.wait()
        assert directory.refusals >= 1  # the fence fired
        assert system.supervisor.actor(alice.user_id) is None  # released, not restarting
        assert handle.crashes == 0 and handle.restarts == 0
        assert "crashed" not in caplog.text
        assert len(system.requests) == sent_before and orders_at_exchange(system) == []
        assert await system.store.pending_orders(alice.user_id) == []


async def test_release_all_stops_every_actor_at_once(autojump_clock: trio.abc.Clock) -> None:
    directory = Directory()
    async with open_test_system(supervisor_options={"directory": directory}) as system:
        users = [await system.add_user() for _ in range(3)]
        handles = []
        for user in users:
            directory.owned.add(user.user_id)
            handles.append(system.supervisor.adopt(user.user_id))
        for handle in handles:
            await handle.up.wait()
        system.supervisor.release_all()
        assert system.supervisor.statistics().actors == 0
        with pytest.raises(ActorUnavailable, match="stopped"):
            await handles[0].cancel(1)  # a handle kept by a caller fails cleanly
        for handle in handles:
            await handle.done.wait()
        assert orders_at_exchange(system) == []
