"""Security records: revoked session tokens, failed logins and registration invitations.

The only place their SQL is written. :class:`SecurityRecords` runs each call through the
store's thread hop (:class:`~tradercoin.store.db.Database`) and hands back plain data. The
HTTP layer keeps what it checks on every request in memory (revoked nonces, the login
throttle) and loads it from here at start, so nothing on the hot path waits for the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tradercoin.clock import WallClock
from tradercoin.store.db import Database
from tradercoin.store.errors import DuplicateUser, StoreError
from tradercoin.store.models import Role, User
from tradercoin.store.schema import invites, login_failures, revoked_tokens
from tradercoin.store.users import insert_user

__all__ = ["InvalidInvite", "LoginFailure", "SecurityRecords"]


class InvalidInvite(StoreError):
    """The invitation code is unknown, already used or expired."""


@dataclass(frozen=True, slots=True)
class LoginFailure:
    """One failed login: the (normalised) username tried, the address, epoch ms."""

    username: str
    address: str
    at: int


_INSERT_REVOKED = revoked_tokens.insert()
_LIVE_REVOKED = sa.select(revoked_tokens.c.nonce, revoked_tokens.c.expires_at).where(
    revoked_tokens.c.expires_at > sa.bindparam("now")
)
_PRUNE_REVOKED = revoked_tokens.delete().where(revoked_tokens.c.expires_at <= sa.bindparam("now"))
_INSERT_FAILURE = login_failures.insert()
_FAILURES_SINCE = (
    sa.select(login_failures.c.username, login_failures.c.address, login_failures.c.at)
    .where(login_failures.c.at > sa.bindparam("since"))
    .order_by(login_failures.c.at, login_failures.c.id)
)
_PRUNE_FAILURES = login_failures.delete().where(login_failures.c.at <= sa.bindparam("since"))
_INSERT_INVITE = invites.insert()
_USE_INVITE = (
    invites.update()
    .where(
        invites.c.code_hash == sa.bindparam("b_code"),
        invites.c.used_at.is_(None),
        invites.c.expires_at > sa.bindparam("b_now"),
    )
    .values(used_by=sa.bindparam("b_user"), used_at=sa.bindparam("b_now"))
)


def _revoke(conn: sa.Connection, nonce: str, user_id: int, expires_at: int) -> None:
    exists = sa.select(revoked_tokens.c.nonce).where(revoked_tokens.c.nonce == nonce)
    if conn.execute(exists).first() is None:
        conn.execute(
            _INSERT_REVOKED, {"nonce": nonce, "user_id": user_id, "expires_at": expires_at}
        )


def _live_revoked(conn: sa.Connection, now: int) -> dict[str, int]:
    return {row[0]: row[1] for row in conn.execute(_LIVE_REVOKED, {"now": now})}


def _prune(conn: sa.Connection, now: int, failures_before: int) -> int:
    gone = conn.execute(_PRUNE_REVOKED, {"now": now}).rowcount
    return int(gone + conn.execute(_PRUNE_FAILURES, {"since": failures_before}).rowcount)


def _add_failure(conn: sa.Connection, username: str, address: str, at: int) -> None:
    conn.execute(_INSERT_FAILURE, {"username": username[:64], "address": address[:64], "at": at})


def _failures_since(conn: sa.Connection, since: int) -> list[LoginFailure]:
    return [LoginFailure(r[0], r[1], r[2]) for r in conn.execute(_FAILURES_SINCE, {"since": since})]


def _add_invite(conn: sa.Connection, code_hash: str, now: int, expires_at: int) -> None:
    conn.execute(
        _INSERT_INVITE, {"code_hash": code_hash, "created_at": now, "expires_at": expires_at}
    )


def _user_with_invite(
    conn: sa.Connection, username: str, password_hash: str, code_hash: str, now: int
) -> User:
    """One transaction: the user, and the invitation marked used by them (or neither)."""
    user = insert_user(conn, username, password_hash, Role.USER, now)
    params = {"b_code": code_hash, "b_now": now, "b_user": user.id}
    if conn.execute(_USE_INVITE, params).rowcount != 1:
        raise InvalidInvite("that invitation code is unknown, used or expired")
    return user


class SecurityRecords:
    """Repositories of the security tables over the store's :class:`Database`."""

    def __init__(self, db: Database, clock: WallClock) -> None:
        self._db = db
        self._clock = clock

    async def revoke_token(self, nonce: bytes, user_id: int, expires_at: int) -> None:
        """Remember a logged-out token until it would have expired (idempotent)."""
        await self._db.write(_revoke, nonce.hex(), user_id, expires_at)

    async def revoked_tokens(self) -> dict[bytes, int]:
        """Every revoked nonce not yet expired, with its expiry (epoch ms)."""
        rows = await self._db.read(_live_revoked, self._clock.now_ms())
        return {bytes.fromhex(nonce): expires for nonce, expires in rows.items()}

    async def record_login_failure(self, username: str, address: str) -> None:
        await self._db.write(_add_failure, username, address, self._clock.now_ms())

    async def login_failures(self, within_ms: int) -> list[LoginFailure]:
        """Failed logins of the last ``within_ms`` milliseconds, oldest first."""
        return await self._db.read(_failures_since, self._clock.now_ms() - within_ms)

    async def prune(self, failures_older_than_ms: int) -> int:
        """Forget expired revocations and failures older than the throttle's window."""
        now = self._clock.now_ms()
        return await self._db.write(_prune, now, now - failures_older_than_ms)

    async def create_invite(self, code_hash: str, lifetime_ms: int) -> int:
        """Store an invitation (its code's hash); returns its expiry (epoch ms)."""
        now = self._clock.now_ms()
        await self._db.write(_add_invite, code_hash, now, now + lifetime_ms)
        return now + lifetime_ms

    async def create_user_with_invite(
        self, username: str, password_hash: str, code_hash: str
    ) -> User:
        """Raises: InvalidInvite (nothing is created), DuplicateUser."""
        try:
            return await self._db.write(
                _user_with_invite, username, password_hash, code_hash, self._clock.now_ms()
            )
        except sa.exc.IntegrityError:
            raise DuplicateUser(f"user {username!r} already exists; pick another name") from None
