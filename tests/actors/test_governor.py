"""RateGovernor: spending within the window, pauses, bans, reported usage, fair stretching."""

from __future__ import annotations

import pytest
import trio

from tradercoin.actors.governor import Demand, RateGovernor
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.protocol import Usage

EPOCH = 1_700_000_000_000


def governor(**kw: object) -> RateGovernor:
    return RateGovernor(clock=FixedEpochClock(EPOCH), **kw)  # type: ignore[arg-type]


def usage(used: int) -> Usage:
    return Usage(
        path="/fapi/v1/order",
        weight=1,
        used_weight_1m=used,
        order_count_10s=None,
        order_count_1m=None,
    )


async def test_default_limit_is_budget_less_ten_percent() -> None:
    assert governor().limit == 2160
    assert governor(budget_per_minute=1000, safety_margin=0.2).limit == 800


async def test_spend_within_the_limit_does_not_wait(autojump_clock: trio.abc.Clock) -> None:
    gov = governor(budget_per_minute=100, safety_margin=0.0)
    start = trio.current_time()
    for _ in range(100):
        await gov.spend(1)
    assert trio.current_time() == start
    assert gov.statistics().used_weight == 100


async def test_spend_beyond_the_limit_waits_for_the_oldest_to_age_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    gov = governor(budget_per_minute=10, safety_margin=0.0)
    start = trio.current_time()
    await gov.spend(6)
    await trio.sleep(10)
    await gov.spend(4)
    await gov.spend(5)  # window full until the first 6 age out at +60
    assert trio.current_time() - start == 60
    assert gov.statistics().waits == 1


async def test_rate_limited_pauses_spending_until_retry_after(
    autojump_clock: trio.abc.Clock,
) -> None:
    gov = governor()
    start = trio.current_time()
    gov.rate_limited(7.5)
    assert gov.statistics().paused_until == EPOCH + 7500
    await gov.spend(1)
    assert trio.current_time() - start == 7.5
    assert gov.statistics().paused_until is None


async def test_a_shorter_retry_after_never_shortens_a_pause(
    autojump_clock: trio.abc.Clock,
) -> None:
    gov = governor()
    start = trio.current_time()
    gov.rate_limited(10)
    gov.rate_limited(2)
    await gov.wait_unpaused()
    assert trio.current_time() - start == 10


async def test_ban_pauses_until_its_epoch_end_and_logs_loudly(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    gov = governor()
    start = trio.current_time()
    gov.banned(EPOCH + 120_000)
    assert gov.statistics().banned_until == EPOCH + 120_000
    await gov.spend(1)
    assert trio.current_time() - start == 120
    assert any("IP BANNED" in r.message and r.levelname == "ERROR" for r in caplog.records)


async def test_reported_usage_corrects_the_window_upwards(
    autojump_clock: trio.abc.Clock,
) -> None:
    gov = governor(budget_per_minute=100, safety_margin=0.0)
    start = trio.current_time()
    await gov.spend(1)
    gov.on_usage(usage(95))  # others on this IP spent 94
    await gov.spend(5)
    assert trio.current_time() == start
    assert gov.statistics().used_weight == 100
    assert EPOCH % 60_000 == 20_000  # the exchange's minute ends 40 s from now
    await gov.spend(1)  # waits until the reported minute is over
    assert trio.current_time() - start == 40
    assert gov.statistics().reported_weight is None


async def test_a_report_counts_our_later_spending_on_top(autojump_clock: trio.abc.Clock) -> None:
    gov = governor(budget_per_minute=100, safety_margin=0.0)
    gov.on_usage(usage(90))
    for _ in range(10):
        await gov.spend(1)
    assert gov.statistics().used_weight == 100


async def test_no_stretch_while_demand_fits() -> None:
    gov = governor()
    for user in range(100):
        gov.set_demand(user, Demand(weight=1, interval=5))
    assert gov.stretch() == (1.0, 1.0)
    assert gov.effective_interval(5, fast=False) == 5
    assert gov.statistics().demand_per_minute == pytest.approx(1200)


async def test_normal_orders_are_stretched_first_and_fairly() -> None:
    gov = governor()  # 2160 per minute, planned at 80 %: 28.8 per second
    for user in range(200):  # 200 w/s of normal demand, then 10 w/s of fast demand
        gov.set_demand(user, Demand(weight=5, interval=5, fast=False))
    for user in range(200, 210):
        gov.set_demand(user, Demand(weight=1, interval=1, fast=True))
    fast, normal = gov.stretch()
    assert fast == 1.0
    assert normal == pytest.approx(200 / (28.8 - 10))
    intervals = gov.statistics().effective_intervals
    assert intervals[0] == intervals[199] == pytest.approx(5 * 200 / 18.8)
    assert intervals[205] == 1.0


async def test_fast_orders_are_stretched_only_beyond_their_share() -> None:
    gov = governor()
    for user in range(100):
        gov.set_demand(user, Demand(weight=1, interval=1, fast=True))  # 100 w/s
    fast, normal = gov.stretch()
    assert fast == pytest.approx(100 / (28.8 * 0.8))
    assert normal == 1.0


async def test_withdrawn_demand_no_longer_counts() -> None:
    gov = governor()
    for user in range(1000):
        gov.set_demand(user, Demand(weight=1, interval=1))
    assert gov.stretch()[1] > 1
    for user in range(1000):
        gov.set_demand(user, None)
    assert gov.stretch() == (1.0, 1.0)
    assert gov.statistics().effective_intervals == {}


async def test_room_at_says_when_a_spend_would_not_wait(autojump_clock: trio.abc.Clock) -> None:
    gov = governor(budget_per_minute=10, safety_margin=0.0)
    start = trio.current_time()
    assert gov.room_at(1) == start
    await gov.spend(10)
    assert gov.room_at(1) == start + 60
    assert gov.statistics().used_weight == 10  # asking records nothing
    gov.rate_limited(90)
    assert gov.room_at(1) == start + 90


async def test_a_ban_reported_by_many_requests_is_logged_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    gov = governor()
    for _ in range(50):
        gov.banned(EPOCH + 120_000)
    assert sum("IP BANNED" in r.message for r in caplog.records) == 1


async def test_try_spend_with_room_succeeds_on_the_real_clock() -> None:
    """Regression: try_spend read the clock before room_at did; on a real clock room_at's
    later "now" always looked like the future, so try_spend never succeeded."""
    governor = RateGovernor(budget_per_minute=2400, clock=FixedEpochClock(0))
    results = [governor.try_spend(1) for _ in range(200)]
    assert all(results)
    assert governor.statistics().used_weight == 200
