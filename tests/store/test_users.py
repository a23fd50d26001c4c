"""Users, credentials (encrypted at rest) and poll policies."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tradercoin.config import PollPolicy
from tradercoin.exchange.protocol import Credentials
from tradercoin.store import (
    CredentialsError,
    DuplicateUser,
    Role,
    Store,
    UnknownUser,
    User,
)
from tradercoin.store.schema import credentials

KEYS = Credentials(api_key="AKIA-public-key-1234", api_secret="very-secret-value")


async def test_users_round_trip(store: Store) -> None:
    op = await store.create_user("olga", "argon2-hash", Role.OPERATOR)
    assert op.role is Role.OPERATOR and op.created_at > 0
    assert await store.get_user(op.id) == op
    assert await store.get_user_by_name("olga") == op
    assert await store.get_user_by_name("nobody") is None
    assert await store.get_user(9999) is None
    plain = await store.create_user("pete", "h2")
    assert await store.list_users() == [op, plain]
    assert "argon2-hash" not in repr(op)


async def test_duplicate_name_is_refused(store: Store, alice: User) -> None:
    with pytest.raises(DuplicateUser, match="'alice' already exists"):
        await store.create_user("alice", "other")


async def test_credentials_are_encrypted_at_rest(store: Store, alice: User) -> None:
    await store.set_credentials(alice.id, KEYS, testnet=True)
    assert await store.get_credentials(alice.id) == KEYS

    def raw(conn: sa.Connection) -> bytes:
        return bytes(conn.execute(sa.select(credentials.c.ciphertext)).scalar_one())

    blob = await store.db.read(raw)
    assert KEYS.api_secret.encode() not in blob and KEYS.api_key.encode() not in blob
    info = await store.credential_info(alice.id)
    assert info is not None
    assert (info.key_last4, info.key_id, info.testnet, info.rotated_at) == (
        "1234",
        "k1",
        True,
        None,
    )
    assert await store.users_with_credentials() == [alice.id]


async def test_credentials_replace_and_delete(store: Store, alice: User, bob: User) -> None:
    assert await store.get_credentials(alice.id) is None
    assert await store.credential_info(alice.id) is None
    await store.set_credentials(alice.id, KEYS)
    newer = Credentials(api_key="new-key-5678", api_secret="new-secret")
    await store.set_credentials(alice.id, newer)
    assert await store.get_credentials(alice.id) == newer
    await store.set_credentials(bob.id, KEYS)
    assert await store.delete_credentials(alice.id) is True
    assert await store.delete_credentials(alice.id) is False
    assert await store.users_with_credentials() == [bob.id]


async def test_credentials_of_unknown_user_are_refused(store: Store) -> None:
    with pytest.raises(UnknownUser, match="user 4242 does not exist"):
        await store.set_credentials(4242, KEYS)


async def test_row_copied_to_another_user_does_not_decrypt(
    store: Store, alice: User, bob: User
) -> None:
    await store.set_credentials(alice.id, KEYS)

    def copy_to_bob(conn: sa.Connection) -> None:
        row = conn.execute(sa.select(credentials).where(credentials.c.user_id == alice.id)).one()
        conn.execute(credentials.insert().values({**row._mapping, "user_id": bob.id}))

    await store.db.write(copy_to_bob)
    with pytest.raises(CredentialsError, match=f"credentials of user {bob.id} cannot") as info:
        await store.get_credentials(bob.id)
    assert KEYS.api_secret not in str(info.value)
    assert await store.get_credentials(alice.id) == KEYS


async def test_poll_policy_round_trip(store: Store, alice: User) -> None:
    op = await store.create_user("olga", "h", Role.OPERATOR)
    assert await store.get_poll_policy(alice.id) is None
    policy = PollPolicy(
        interval=2.5, fast_interval=0.5, fast_notional=Decimal("2500.75"), reconcile_interval=30
    )
    await store.set_poll_policy(alice.id, policy, updated_by=op.id)
    assert await store.get_poll_policy(alice.id) == policy
    await store.set_poll_policy(alice.id, PollPolicy(), updated_by=None)
    assert await store.get_poll_policy(alice.id) == PollPolicy()
    with pytest.raises(UnknownUser):
        await store.set_poll_policy(777, policy, updated_by=None)
