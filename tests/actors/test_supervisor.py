"""The supervisor's machinery with a trivial actor: restarts, back-off, stop, shutdown."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
import trio

from tradercoin.actors import ActorUnavailable
from tradercoin.actors.book import Folded
from tradercoin.actors.messages import ActorState, Stop, StreamState
from tradercoin.actors.supervisor import ActorHandle, backoff_delay
from tradercoin.actors.user import UserActor
from tradercoin.orders import OrderEvent
from tradercoin.testing import open_test_system


class TrivialActor:
    """Fails ``failures`` times before starting, then runs until cancelled."""

    def __init__(self, handle: ActorHandle, log: list[tuple[int, float]], failures: int) -> None:
        self.user_id = handle.user_id
        self.state: ActorState = "starting"
        self.stream_state: StreamState = "off"
        self.last_poll: int | None = None
        self.error_count = 0
        self.last_error: str | None = None
        self._log = log
        self._failures = failures

    @property
    def pending_count(self) -> int:
        return 0

    def next_deadline(self) -> float:
        return math.inf

    def effective_interval(self) -> float:
        return 5.0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._log.append((self.user_id, trio.current_time()))
        if sum(1 for user, _ in self._log if user == self.user_id) <= self._failures:
            raise RuntimeError(f"start failure of user {self.user_id}")
        self.state = "running"
        task_status.started()
        await trio.sleep_forever()


def factory(log: list[tuple[int, float]], failing: dict[int, int]) -> Any:
    return lambda handle: TrivialActor(handle, log, failing.get(handle.user_id, 0))


def test_backoff_doubles_from_1s_to_5min_with_at_most_25_percent_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, rng, low=1.0, high=300.0) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        base = min(300.0, 2.0 ** (n - 1))
        assert base <= delay <= min(300.0, base * 1.25)
    assert delays[-1] == 300.0
    again = random.Random(7)
    assert delays == [backoff_delay(n, again, low=1.0, high=300.0) for n in range(1, 12)]


async def test_a_failing_actor_is_restarted_with_growing_backoff_and_others_untouched(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[tuple[int, float]] = []
    options = {"actor_factory": factory(log, {1: 4})}
    async with open_test_system(supervisor_options=options) as system:
        start = trio.current_time()
        alice = await system.add_user("alice")
        bob = await system.add_user("bob")
        await trio.sleep(60)
        alice_starts = [t - start for user, t in log if user == alice.user_id]
        assert len(alice_starts) == 5
        waits = [b - a for a, b in itertools.pairwise(alice_starts)]
        for n, wait in enumerate(waits, start=1):
            assert 2.0 ** (n - 1) <= wait <= 1.25 * 2.0 ** (n - 1)
        assert [user for user, _ in log].count(bob.user_id) == 1
        assert alice.status().restarts == 4 and alice.status().error_count == 4
        assert "start failure" in (alice.status().last_error or "")
        assert bob.status().restarts == 0
        assert system.supervisor.statistics().running == 2


async def test_the_same_seed_gives_the_same_restart_times(autojump_clock: trio.abc.Clock) -> None:
    runs = []
    for _ in range(2):
        log: list[tuple[int, float]] = []
        options = {"actor_factory": factory(log, {1: 3})}
        async with open_test_system(supervisor_options=options, seed=3) as system:
            start = trio.current_time()
            await system.add_user("alice")
            await trio.sleep(30)
        runs.append([round(t - start, 6) for _, t in log])
    assert runs[0] == runs[1]


async def test_requests_fail_fast_while_the_actor_backs_off(autojump_clock: trio.abc.Clock) -> None:
    log: list[tuple[int, float]] = []
    options = {"actor_factory": factory(log, {1: 1}), "restart_min": 10.0}
    async with open_test_system(supervisor_options=options) as system:
        alice = await system.add_user("alice")
        assert alice.status().state == "backoff"
        with pytest.raises(ActorUnavailable, match="restarting"):
            await alice.place("BTCUSDT", "BUY", "MARKET", "0.01")
        send, receive = trio.open_memory_channel[dict[str, Any]](4)
        with pytest.raises(ActorUnavailable):
            await alice.actor.attach(send)
        with pytest.raises(trio.EndOfChannel):
            await receive.receive()  # the channel was closed, not leaked


async def test_removing_credentials_stops_the_actor_and_closes_its_sessions(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        bob = await system.add_user("bob")
        tab = await alice.open_session()
        handle = alice.actor
        await system.store.delete_credentials(alice.user_id)
        await system.supervisor.credentials_changed(alice.user_id)
        assert system.supervisor.actor(alice.user_id) is None
        assert handle.state == "stopped"
        with pytest.raises(ActorUnavailable):
            await handle.cancel(1)
        alert = await tab.wait_for(lambda m: m["type"] == "alert")
        assert alert.message["kind"] == "credentials_removed"
        with pytest.raises(EOFError):
            await tab.wait_for(lambda m: False)
        assert bob.status().state == "running"
        assert [s.user_id for s in system.supervisor.statuses()] == [bob.user_id]


async def test_shutdown_fails_queued_requests_and_closes_every_channel(
    autojump_clock: trio.abc.Clock,
) -> None:
    send, receive = trio.open_memory_channel[dict[str, Any]](4)
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        await alice.actor.attach(send)
    with pytest.raises(trio.EndOfChannel):
        await receive.receive()


async def test_an_event_stored_by_an_actor_that_crashed_before_pushing_still_arrives_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    crashed: list[float] = []

    class CrashAfterStoring(UserActor):
        async def _commit(self, folded: Folded) -> list[OrderEvent]:
            if not crashed and any(c.after.status == "filled" for c in folded.changes):
                crashed.append(trio.current_time())
                await self._store.apply(folded.changes, folded.fills)  # stored, never pushed
                raise RuntimeError("injected bug between store and push")
            return await super()._commit(folded)

    async with open_test_system(supervisor_options={"actor_class": CrashAfterStoring}) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        system.sim.fill("BTCUSDT", order.exchange_order_id)
        got = await tab.wait_for_status(order.id, "filled")
        assert crashed and got.time - crashed[0] <= 1.25  # the restart caught the tab up
        await trio.sleep(30)
        assert [u["status"] for u in tab.updates(order.id)].count("filled") == 1
        seqs = [m["seq"] for m in tab.messages("order_update")]
        assert seqs == sorted(set(seqs))


async def test_new_keys_restart_an_actor_that_stopped_by_itself(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        old = alice.actor
        old.tell(Stop())
        await old.done.wait()
        assert alice.status().state == "stopped"
        await system.supervisor.credentials_changed(alice.user_id)
        assert alice.actor is not old
        assert alice.status().state == "running"
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert order.status == "new"


async def test_an_actor_failing_while_it_is_stopped_never_breaks_the_shutdown(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the model-based test: an actor whose task fails while it is being cancelled
    raised a group of that error and Cancelled, which escaped the supervisor, so shutting
    the service down ended in an exception group."""

    class FailsWhenStopped(UserActor):
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._fail_when_cancelled)
                task_status.started()
                await trio.sleep_forever()

        async def _fail_when_cancelled(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("injected: fails while stopping")

    async with open_test_system(supervisor_options={"actor_class": FailsWhenStopped}) as system:
        await system.add_user("alice")
    assert "actor failed while stopping" in caplog.text
