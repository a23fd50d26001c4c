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
from tradercoin.actors.supervisor import ActorHandle, Supervisor

__all__ = [
    "ActorHandle",
    "ActorStatus",
    "ActorUnavailable",
    "Demand",
    "GovernorStatistics",
    "OrderNotFoundError",
    "OrderRejected",
    "PlaceOrderRequest",
    "RateGovernor",
    "Supervisor",
    "SupervisorStatistics",
]
