"""The actors: a supervisor, one actor per user, and the shared rate governor."""

from tradercoin.actors.governor import Demand, RateGovernor
from tradercoin.actors.messages import (
    ActorStatus,
    ActorUnavailable,
    GovernorStatistics,
    OrderNotFoundError,
    OrderRejected,
    PlaceOrderRequest,
    SupervisorStatistics,
)

__all__ = [
    "ActorStatus",
    "ActorUnavailable",
    "Demand",
    "GovernorStatistics",
    "OrderNotFoundError",
    "OrderRejected",
    "PlaceOrderRequest",
    "RateGovernor",
    "SupervisorStatistics",
]
