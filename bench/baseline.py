"""The seed's order monitor as an actor: the benchmark's baseline, not a strategy we run.

The seed's worker asked ``GET /fapi/v1/order`` for every pending order every interval (one
request per order). :class:`PerOrderActor` does exactly that inside our actor, so
``bench/monitor.py`` can put the seed's design and ours side by side on the same supervisor,
governor, store and simulator (``--strategy per-order``). Everything else (merging, trades,
sessions) is :class:`~tradercoin.actors.user.UserActor`'s.
"""

from __future__ import annotations

from tradercoin.actors.book import Folded
from tradercoin.actors.user import GET_ORDER_WEIGHT, USER_TRADES_WEIGHT, UserActor
from tradercoin.orders import ExchangeUpdate, Order, OrderChange

__all__ = ["PerOrderActor"]


class PerOrderActor(UserActor):
    """``GET order`` for every pending order every cycle (the seed's N+1 worker)."""

    def _planned_weight(self) -> int:
        return len(self._book) * GET_ORDER_WEIGHT + len(self._book.owed()) * USER_TRADES_WEIGHT

    async def _poll_orders(self, pending: list[Order]) -> Folded:
        updates: list[ExchangeUpdate] = []
        gone: list[OrderChange] = []
        for order in pending:
            update = await self._settle(order, gone)
            if update is not None:
                updates.append(update)
        return self._fold_poll(updates, gone)
