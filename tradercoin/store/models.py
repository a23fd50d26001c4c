"""Plain data the store hands out: frozen dataclasses, never ORM objects."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tradercoin.orders import Order

__all__ = ["CredentialInfo", "OrderPage", "Role", "StoreStatistics", "User"]


class Role(enum.StrEnum):
    USER = "user"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    password_hash: str
    created_at: int

    def __repr__(self) -> str:
        return f"User(id={self.id}, username={self.username!r}, role={self.role.value})"


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about a user's stored keys: never the keys themselves."""

    user_id: int
    key_last4: str
    key_id: str
    testnet: bool
    created_at: int
    rotated_at: int | None


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of a user's orders, newest first; ``total`` counts every match."""

    items: list[Order]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters of the write batcher (since ``open_store``)."""

    batches: int
    changes_committed: int
    jobs_committed: int
    jobs_failed: int
    mean_batch_size: float
    max_batch_size: int
    retries: int
    fallbacks: int
    jobs_waiting: int
