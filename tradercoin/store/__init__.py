"""The store: SQLAlchemy Core repositories, Alembic migrations, the write batcher, secrets.

Open it with :func:`open_store`; every method of :class:`Store` runs its SQL in a worker
thread and returns plain frozen dataclasses.
"""

from tradercoin.store.errors import (
    BadDatabaseURL,
    CommitUnknown,
    CredentialsError,
    DuplicateUser,
    OrderConflict,
    StoreClosed,
    StoreError,
    UnknownUser,
)
from tradercoin.store.models import CredentialInfo, OrderPage, Role, StoreStatistics, User
from tradercoin.store.secrets import SecretBox, generate_key
from tradercoin.store.store import EVENT_RETENTION_S, MAX_PAGE_SIZE, Store, open_store

__all__ = [
    "EVENT_RETENTION_S",
    "MAX_PAGE_SIZE",
    "BadDatabaseURL",
    "CommitUnknown",
    "CredentialInfo",
    "CredentialsError",
    "DuplicateUser",
    "OrderConflict",
    "OrderPage",
    "Role",
    "SecretBox",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreStatistics",
    "UnknownUser",
    "User",
    "generate_key",
    "open_store",
]
