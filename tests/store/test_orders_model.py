"""Property: list_orders agrees with a plain Python model for any orders, filters and page."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.store.conftest import EPOCH_MS, placed
from tradercoin.clock import FixedEpochClock
from tradercoin.orders import Order, OrderChange, OrderStatus
from tradercoin.store import SecretBox, open_store

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOL_USDT"]


async def _inline(fn: Any, /, *args: Any, limiter: Any = None) -> Any:
    await trio.lowlevel.checkpoint()
    return fn(*args)


order_specs = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1]),  # owner: alice, mostly, or bob
        st.sampled_from(SYMBOLS),
        st.sampled_from([OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.CANCELED]),
        st.integers(0, 5),  # created_at offset: ties are common
    ),
    min_size=4,
    max_size=30,
)
queries = st.fixed_dictionaries(
    {
        "status": st.sampled_from([None, None, OrderStatus.NEW, OrderStatus.FILLED]),
        "symbol": st.sampled_from([None, None, *SYMBOLS]),
        "q": st.sampled_from([None, None, "eth", "_", "c1", "%", "usdt"]),
        "page": st.integers(1, 3),
        "page_size": st.integers(1, 7),
    }
)


def _matches(order: Order, query: dict[str, Any]) -> bool:
    q = query["q"]
    return (
        (query["status"] is None or order.status == query["status"])
        and (query["symbol"] is None or order.symbol == query["symbol"])
        and (
            not q or q.lower() in order.symbol.lower() or q.lower() in order.client_order_id.lower()
        )
    )


@settings(max_examples=40, deadline=None)
@given(specs=order_specs, query=queries)
async def test_list_orders_matches_the_model(specs: list[Any], query: dict[str, Any]) -> None:
    clock = FixedEpochClock(EPOCH_MS)
    async with open_store(
        "sqlite:///:memory:", secrets=SecretBox.ephemeral(), clock=clock, run_sync=_inline
    ) as store:
        users = [await store.create_user("alice", "h"), await store.create_user("bob", "h")]
        stored: list[Order] = []
        for n, (owner, symbol, status, offset) in enumerate(specs):
            change = placed(users[owner].id, f"c{n}", symbol=symbol, now=EPOCH_MS + offset)
            (event,) = await store.apply([change])
            after = dataclasses.replace(event.order, status=status)
            (event,) = await store.apply([OrderChange(before=event.order, after=after)])
            stored.append(event.order)
        alice = users[0].id
        mine = [o for o in stored if o.user_id == alice and _matches(o, query)]
        mine.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        start = (query["page"] - 1) * query["page_size"]
        page = await store.list_orders(alice, **query)
        assert page.items == mine[start : start + query["page_size"]]
        assert page.total == len(mine)
