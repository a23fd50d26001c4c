"""When actors poll: intervals, fast orders, phases, policy changes, 429 pauses, crashes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio

from tradercoin.actors import ActorUnavailable
from tradercoin.actors.user import UserActor
from tradercoin.config import PollPolicy
from tradercoin.exchange.sim import Limits
from tradercoin.testing import TestUser, open_test_system

OPEN_ORDERS = "/fapi/v1/openOrders"


def poll_times(user: TestUser, after: float = -1.0) -> list[float]:
    return [r.time for r in user.requests(OPEN_ORDERS) if r.time > after]


def gaps(times: list[float]) -> set[float]:
    return {round(b - a, 6) for a, b in itertools.pairwise(times)}


async def test_pending_orders_are_polled_every_interval_with_one_request_per_symbol(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        for price in ("1000", "1100", "1200"):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        await alice.place("ETHUSDT", "BUY", "LIMIT", "1", price="200")
        await trio.sleep(60)
        times = poll_times(alice)
        assert gaps(sorted(set(times))) == {5.0}
        assert len(times) == 2 * len(set(times))  # BTCUSDT and ETHUSDT, once each
        assert alice.requests("/fapi/v1/order")[-1].method == "POST"  # no GET order at all


async def test_fast_orders_are_polled_at_the_fast_interval(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        await alice.place("BTCUSDT", "SELL", "LIMIT", "0.3", price="100000")  # 30,000 notional
        await trio.sleep(20)
        assert gaps(poll_times(alice)) == {1.0}
        assert alice.status().effective_interval == 1.0


async def test_polls_of_many_users_start_at_spread_phases(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        users = [await system.add_user() for _ in range(10)]
        for user in users:
            await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        start = trio.current_time()
        await trio.sleep(5)
        firsts = [poll_times(u)[0] - start for u in users]
        assert len({round(t, 6) for t in firsts}) == 10
        assert all(0 < t <= 5 for t in firsts)
        assert max(firsts) - min(firsts) > 3.5


async def test_changing_the_interval_from_5s_to_1s_changes_the_request_times(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(30)
        assert gaps(poll_times(alice)) == {5.0}
        changed_at = trio.current_time()
        policy = PollPolicy(interval=1.0)
        await system.supervisor.set_poll_policy(alice.user_id, policy, updated_by=None)
        assert await system.store.get_poll_policy(alice.user_id) == policy
        await trio.sleep(30)
        after = poll_times(alice, after=changed_at)
        assert after[0] - changed_at <= 5.0  # the deadline already set stands
        assert gaps(after[1:]) == {1.0}  # after[0] -> after[1]: onto the 1 s grid


async def test_a_429_pauses_every_actor_until_retry_after(autojump_clock: trio.abc.Clock) -> None:
    sim_options = {"limits": Limits(weight_per_minute=30)}
    async with open_test_system(budget_per_minute=100_000, sim_options=sim_options) as system:
        policy = PollPolicy(interval=1.0)
        users = [await system.add_user(policy=policy) for _ in range(3)]
        for user in users:
            await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(90)
        [first_429] = [r for r in system.requests if r.status == 429][:1]
        assert first_429.retry_after is not None and first_429.retry_after > 10
        resume = first_429.time + first_429.retry_after
        during = [r for r in system.requests if first_429.time < r.time < resume]
        assert during == []
        for user in users:
            assert any(resume <= t <= resume + 1 for t in poll_times(user))


async def test_a_crashing_actor_restarts_and_the_others_keep_their_schedule(
    autojump_clock: trio.abc.Clock,
) -> None:
    crashes: list[float] = []

    class CrashOnThirdPoll(UserActor):
        async def poll(self) -> None:
            if self.user_id == 1 and self.polls == 2 and not crashes:
                crashes.append(trio.current_time())
                raise RuntimeError("injected bug")
            await super().poll()

    options = {"actor_class": CrashOnThirdPoll}
    async with open_test_system(supervisor_options=options) as system:
        alice = await system.add_user("alice")
        bob = await system.add_user("bob")
        tab = await alice.open_session()
        a = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await bob.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(60)
        assert len(crashes) == 1
        assert gaps(poll_times(bob)) == {5.0}
        assert alice.status().restarts == 1
        assert alice.status().state == "running"
        assert alice.status().error_count == 1
        after = poll_times(alice, after=crashes[0])
        assert 1.0 <= after[0] - crashes[0] <= 1.25 + 5.0  # back-off 1 s (+ jitter), next tick
        system.sim.fill("BTCUSDT", a.exchange_order_id)  # the session survived the restart
        await tab.wait_for_status(a.id, "filled")


async def test_demand_over_the_budget_stretches_every_interval_fairly(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(budget_per_minute=30) as system:  # 27 weight a minute
        users = [await system.add_user() for _ in range(5)]
        for user in users:
            await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(240)
        stretch = 5 * (1 / 5) / (0.8 * 27 / 60)  # 1 weight/s over 80 % of 0.45/s
        stats = system.governor.statistics()
        assert stats.stretch_normal == pytest.approx(stretch)
        assert list(stats.effective_intervals.values()) == [pytest.approx(5 * stretch)] * 5
        for user in users:
            assert user.status().effective_interval == pytest.approx(5 * stretch)
            steady = gaps(poll_times(user, after=90))  # after the start-up minute
            assert max(steady) == pytest.approx(min(steady)) == pytest.approx(5 * stretch)
        assert all(r.status == 200 for r in system.requests)


async def test_a_bug_in_a_request_fails_that_request_only_and_never_restarts_the_actor(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 9, defect 7: five bad requests used to push the restart back-off to 16 s and
    more, during which the user could not cancel real orders."""

    class CrashOnCancel(UserActor):
        async def _cancel(self, order_id: int) -> Any:
            if order_id == 999:
                raise RuntimeError("injected bug")
            return await super()._cancel(order_id)

    async with open_test_system(supervisor_options={"actor_class": CrashOnCancel}) as system:
        alice = await system.add_user("alice")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        for _ in range(5):
            with pytest.raises(ActorUnavailable, match="went wrong"):
                await alice.cancel(999)
        canceled = await alice.cancel(order.id)
        assert canceled.status == "canceled"
        assert alice.status().state == "running" and alice.actor.restarts == 0


async def test_an_ip_ban_pauses_every_actor_until_it_ends(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sim_options = {"limits": Limits(weight_per_minute=10, ban_after=0)}
    async with open_test_system(budget_per_minute=100_000, sim_options=sim_options) as system:
        policy = PollPolicy(interval=1.0)
        users = [await system.add_user(policy=policy) for _ in range(2)]
        for user in users:
            await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(30)
        [ban] = [r for r in system.requests if r.status == 418][:1]
        banned_until = system.governor.statistics().banned_until
        assert banned_until is not None
        ends = trio.current_time() + (banned_until - system.clock.now_ms()) / 1000
        await trio.sleep_until(ends + 5)
        assert [r for r in system.requests if ban.time < r.time < ends - 0.001] == []
        assert any("IP BANNED" in r.message for r in caplog.records)
        for user in users:
            assert any(ends <= t <= ends + 5 for t in poll_times(user))


async def test_under_a_spent_budget_every_fill_still_arrives(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(budget_per_minute=20) as system:
        users = [await system.add_user() for _ in range(6)]
        tabs = [await user.open_session() for user in users]
        orders = [await u.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000") for u in users]
        await trio.sleep(90)
        for order in orders:
            system.sim.fill("BTCUSDT", order.exchange_order_id)
        with trio.fail_after(600):
            for tab, order in zip(tabs, orders, strict=True):
                await tab.wait_for_status(order.id, "filled")
        assert all(r.status == 200 for r in system.requests)
