"""The seed's order monitor as an actor: the benchmark's baseline, not a strategy we run.

The seed's worker asked ``GET /fapi/v1/order`` for every pending order every interval (one
request per order). :class:`PerOrderActor` does exactly that inside our actor, so
``bench/monitor.py`` can put the seed's design and ours side by side on the same supervisor,
governor, store and simulator (``--strategy per-order``). Everything else (merging, trades,
sessions) is :class:`~tradercoin.actors.user.UserActor`'s.
"""

from __future__ import annotations

from typing import Any

from tradercoin.actors.book import Folded, OrderBook
from tradercoin.actors.parts import GET_ORDER_WEIGHT
from tradercoin.actors.user import UserActor
from tradercoin.orders import ExchangeUpdate, Order, OrderChange

__all__ = ["PerOrderActor"]


class PerOrderActor(UserActor):
    """``GET order`` for every pending order every cycle (the seed's N+1 worker). Like the
    seed, it fetches no trades: it measures the seed's request pattern, nothing more."""

    def __init__(self, user_id: int, **kw: Any) -> None:
        super().__init__(user_id, **kw)
        self._book = OrderBook(
            user_id,
            vanish_confirmations=self._config.vanish_confirmations,
            vanish_after_ms=int(self._config.vanish_after * 1000),
            track_trades=False,
        )

    def _planned_weight(self) -> int:
        return len(self._book) * GET_ORDER_WEIGHT

    async def _poll_orders(self, pending: list[Order]) -> Folded:
        updates: list[ExchangeUpdate] = []
        gone: list[OrderChange] = []
        for order in pending:
            update = await self._settle(order, gone)
            if update is not None:
                updates.append(update)
        return self._fold_poll(updates, gone)
