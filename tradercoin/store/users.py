"""Users, credentials and poll policies: the only place their SQL is written.

Credentials arrive here already sealed (:class:`~tradercoin.store.secrets.SecretBox`): this
module stores and returns ciphertext rows, never plaintext keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tradercoin.config import PollPolicy
from tradercoin.store.models import CredentialInfo, Role, User
from tradercoin.store.schema import credentials, poll_policies, users

__all__ = [
    "SealedCredentials",
    "all_sealed",
    "credential_info",
    "delete_credentials",
    "get_poll_policy",
    "get_sealed",
    "get_user",
    "get_user_by_name",
    "insert_user",
    "list_users",
    "replace_sealed",
    "set_poll_policy",
    "upsert_credentials",
    "users_with_credentials",
]


@dataclass(frozen=True, slots=True)
class SealedCredentials:
    user_id: int
    key_id: str
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"SealedCredentials(user_id={self.user_id}, key_id={self.key_id!r})"


_USER_COLUMNS = [
    users.c.id,
    users.c.username,
    users.c.role,
    users.c.password_hash,
    users.c.created_at,
]
_ROLE = {r.value: r for r in Role}
_INSERT_USER = users.insert().returning(users.c.id)
_GET_USER = sa.select(*_USER_COLUMNS).where(users.c.id == sa.bindparam("id"))
_USER_BY_NAME = sa.select(*_USER_COLUMNS).where(users.c.username == sa.bindparam("username"))
_LIST_USERS = sa.select(*_USER_COLUMNS).order_by(users.c.id)


def _user(r: Sequence[Any]) -> User:
    return User(id=r[0], username=r[1], role=_ROLE[r[2]], password_hash=r[3], created_at=r[4])


def insert_user(
    conn: sa.Connection, username: str, password_hash: str, role: Role, now: int
) -> User:
    """Raises: sqlalchemy.exc.IntegrityError when the name is taken."""
    params = {
        "username": username,
        "role": role.value,
        "password_hash": password_hash,
        "created_at": now,
    }
    user_id = conn.execute(_INSERT_USER, params).scalar_one()
    return User(
        id=user_id, username=username, role=role, password_hash=password_hash, created_at=now
    )


def get_user(conn: sa.Connection, user_id: int) -> User | None:
    row = conn.execute(_GET_USER, {"id": user_id}).first()
    return None if row is None else _user(row)


def get_user_by_name(conn: sa.Connection, username: str) -> User | None:
    row = conn.execute(_USER_BY_NAME, {"username": username}).first()
    return None if row is None else _user(row)


def list_users(conn: sa.Connection) -> list[User]:
    return [_user(r) for r in conn.execute(_LIST_USERS)]


# --- credentials -----------------------------------------------------------------------------

_INFO = sa.select(
    credentials.c.user_id,
    credentials.c.key_last4,
    credentials.c.key_id,
    credentials.c.testnet,
    credentials.c.created_at,
    credentials.c.rotated_at,
).where(credentials.c.user_id == sa.bindparam("user_id"))
_SEALED = sa.select(credentials.c.user_id, credentials.c.key_id, credentials.c.ciphertext)
_GET_SEALED = _SEALED.where(credentials.c.user_id == sa.bindparam("user_id"))
_DELETE_CREDS = credentials.delete().where(credentials.c.user_id == sa.bindparam("user_id"))
_WITH_CREDS = sa.select(credentials.c.user_id).order_by(credentials.c.user_id)
_REPLACE_SEALED = (
    credentials.update()
    .where(
        credentials.c.user_id == sa.bindparam("b_user_id"),
        credentials.c.key_id == sa.bindparam("b_old_kid"),
    )
    .values(
        key_id=sa.bindparam("b_kid"),
        ciphertext=sa.bindparam("b_blob"),
        rotated_at=sa.bindparam("b_now"),
    )
)


def _upsert(insert: Any, table: sa.Table, key: str) -> Any:
    stmt = insert(table)
    columns = [c.name for c in table.columns if c.name != key]
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={name: stmt.excluded[name] for name in columns}
    )


_UPSERT_CREDS = {
    "sqlite": _upsert(sqlite.insert, credentials, "user_id"),
    "postgresql": _upsert(postgresql.insert, credentials, "user_id"),
}


def upsert_credentials(
    conn: sa.Connection, user_id: int, kid: str, blob: bytes, last4: str, testnet: bool, now: int
) -> None:
    """Raises: sqlalchemy.exc.IntegrityError when the user does not exist."""
    params = {
        "user_id": user_id,
        "key_id": kid,
        "ciphertext": blob,
        "key_last4": last4,
        "testnet": testnet,
        "created_at": now,
        "rotated_at": None,
    }
    conn.execute(_UPSERT_CREDS[conn.dialect.name], params)


def get_sealed(conn: sa.Connection, user_id: int) -> SealedCredentials | None:
    row = conn.execute(_GET_SEALED, {"user_id": user_id}).first()
    return None if row is None else SealedCredentials(row[0], row[1], bytes(row[2]))


def all_sealed(conn: sa.Connection) -> list[SealedCredentials]:
    return [SealedCredentials(r[0], r[1], bytes(r[2])) for r in conn.execute(_SEALED)]


def replace_sealed(
    conn: sa.Connection, rows: Sequence[tuple[SealedCredentials, str, bytes]], now: int
) -> int:
    """Store re-encrypted rows, each only if its key id did not change meanwhile."""
    done = 0
    for old, kid, blob in rows:
        params = {
            "b_user_id": old.user_id,
            "b_old_kid": old.key_id,
            "b_kid": kid,
            "b_blob": blob,
            "b_now": now,
        }
        done += conn.execute(_REPLACE_SEALED, params).rowcount
    return done


def credential_info(conn: sa.Connection, user_id: int) -> CredentialInfo | None:
    r = conn.execute(_INFO, {"user_id": user_id}).first()
    if r is None:
        return None
    return CredentialInfo(
        user_id=r[0],
        key_last4=r[1],
        key_id=r[2],
        testnet=bool(r[3]),
        created_at=r[4],
        rotated_at=r[5],
    )


def delete_credentials(conn: sa.Connection, user_id: int) -> bool:
    return bool(conn.execute(_DELETE_CREDS, {"user_id": user_id}).rowcount)


def users_with_credentials(conn: sa.Connection) -> list[int]:
    return [r[0] for r in conn.execute(_WITH_CREDS)]


# --- poll policies ---------------------------------------------------------------------------

_GET_POLICY = sa.select(
    poll_policies.c.interval,
    poll_policies.c.fast_interval,
    poll_policies.c.fast_notional,
    poll_policies.c.reconcile_interval,
).where(poll_policies.c.user_id == sa.bindparam("user_id"))
_UPSERT_POLICY = {
    "sqlite": _upsert(sqlite.insert, poll_policies, "user_id"),
    "postgresql": _upsert(postgresql.insert, poll_policies, "user_id"),
}


def get_poll_policy(conn: sa.Connection, user_id: int) -> PollPolicy | None:
    r = conn.execute(_GET_POLICY, {"user_id": user_id}).first()
    if r is None:
        return None
    return PollPolicy(
        interval=r[0], fast_interval=r[1], fast_notional=Decimal(r[2]), reconcile_interval=r[3]
    )


def set_poll_policy(
    conn: sa.Connection, user_id: int, policy: PollPolicy, updated_by: int | None, now: int
) -> None:
    """Raises: sqlalchemy.exc.IntegrityError when a user does not exist."""
    params = {
        "user_id": user_id,
        "interval": policy.interval,
        "fast_interval": policy.fast_interval,
        "fast_notional": format(policy.fast_notional, "f"),
        "reconcile_interval": policy.reconcile_interval,
        "updated_by": updated_by,
        "updated_at": now,
    }
    conn.execute(_UPSERT_POLICY[conn.dialect.name], params)
