"""Accounts, tokens, cookies, CSRF and login throttling, through the app's test client."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.http.conftest import bearer, register
from tradercoin.http.auth import COOKIE
from tradercoin.http.context import HttpContext
from tradercoin.store import Role, Store


async def test_register_returns_user_token_and_strict_httponly_cookie(client: Any) -> None:
    response = await client.post(
        "/api/auth/register", json={"username": "alice", "password": "correct horse"}
    )
    body = await response.get_json()
    assert response.status_code == 201
    assert body["data"]["username"] == "alice"
    assert body["data"]["role"] == "user"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={body['token']}")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_password_is_stored_as_argon2_hash(client: Any, store: Store) -> None:
    await register(client, "alice", "correct horse")
    user = await store.get_user_by_name("alice")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash


async def test_duplicate_username_is_409(client: Any) -> None:
    await register(client, "alice")
    response = await client.post(
        "/api/auth/register", json={"username": "alice", "password": "other password"}
    )
    assert response.status_code == 409
    assert (await response.get_json())["error"]["code"] == "username_taken"


async def test_me_by_bearer_token_and_by_cookie(client: Any) -> None:
    token = await register(client)
    by_token = await client.get("/api/auth/me", headers=bearer(token))
    assert (await by_token.get_json())["data"]["username"] == "alice"
    by_cookie = await client.get("/api/auth/me")  # the test client kept the cookie
    assert by_cookie.status_code == 200


async def test_me_without_token_is_401(ctx: HttpContext) -> None:
    from tradercoin.http.app import create_app

    response = await create_app(ctx).test_client().get("/api/auth/me")
    assert response.status_code == 401
    assert (await response.get_json())["status"] == "error"


async def test_forged_token_is_401(client: Any) -> None:
    token = await register(client)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await client.get("/api/auth/me", headers=bearer(forged))
    assert response.status_code == 401


async def test_login_then_logout_revokes_the_token(client: Any) -> None:
    await register(client)
    response = await client.post(
        "/api/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 200
    token = (await response.get_json())["token"]
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200
    out = await client.post("/api/auth/logout", headers=bearer(token))
    assert out.status_code == 200
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 401


async def test_wrong_password_is_401(client: Any) -> None:
    await register(client)
    response = await client.post(
        "/api/auth/login", json={"username": "alice", "password": "wrong password"}
    )
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "bad_credentials"


async def test_login_is_throttled_per_account(client: Any, ctx: HttpContext) -> None:
    await register(client)
    for _ in range(ctx.throttle.per_account):
        await client.post("/api/auth/login", json={"username": "alice", "password": "nope nope"})
    response = await client.post(
        "/api/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


async def test_login_is_throttled_per_address(client: Any, ctx: HttpContext) -> None:
    ctx.throttle.per_address = 3
    for i in range(3):
        await client.post("/api/auth/login", json={"username": f"user{i}", "password": "nope nope"})
    response = await client.post(
        "/api/auth/login", json={"username": "someone", "password": "nope nope"}
    )
    assert response.status_code == 429


async def test_throttle_window_slides_on_trios_clock(autojump_clock: Any) -> None:
    from tradercoin.http.security import LoginThrottle

    throttle = LoginThrottle(per_account=2, window=60.0)
    throttle.failed("bob", "1.2.3.4")
    await trio.sleep(10)
    throttle.failed("bob", "1.2.3.4")
    assert throttle.wait_time("bob", "1.2.3.4") == 50.0
    assert throttle.wait_time("bob", "5.6.7.8") == 0.0  # an address that never failed
    await trio.sleep(50)
    assert throttle.wait_time("bob", "1.2.3.4") == 0.0


async def test_cookie_mutation_needs_json_content_type(client: Any) -> None:
    await register(client)
    response = await client.put(
        "/api/credentials", data="api_key=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 403
    assert (await response.get_json())["error"]["code"] == "csrf"


async def test_cookie_mutation_from_another_origin_is_403(client: Any) -> None:
    await register(client)
    response = await client.put(
        "/api/credentials",
        json={"api_key": "abcdefgh1234", "api_secret": "s" * 16},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


async def test_credentials_are_write_only(client: Any, store: Store) -> None:
    token = await register(client)
    response = await client.put(
        "/api/credentials",
        json={"api_key": "abcdefgh1234WXYZ", "api_secret": "supersecretvalue"},
        headers=bearer(token),
    )
    text = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert "supersecretvalue" not in text and "abcdefgh1234" not in text
    shown = await (await client.get("/api/credentials", headers=bearer(token))).get_json()
    assert shown["data"]["key_last4"] == "WXYZ"


async def test_operator_role_is_reported(client: Any, store: Store, ctx: HttpContext) -> None:
    hashed = await ctx.passwords.hash("operator pass")
    await store.create_user("root", hashed, Role.OPERATOR)
    response = await client.post(
        "/api/auth/login", json={"username": "root", "password": "operator pass"}
    )
    assert (await response.get_json())["data"]["role"] == "operator"


@pytest.mark.parametrize("flood", ["registrations", "guesses from failed addresses"])
async def test_clean_logins_are_not_starved_by_a_flood(flood: str) -> None:
    from argon2 import PasswordHasher

    from tradercoin.http.security import Passwords

    passwords = Passwords(PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1))
    stored = await passwords.hash("the login password")
    done: list[str] = []

    async def new_account(i: int) -> None:
        if flood == "registrations":
            await passwords.hash(f"new account {i}")
        else:
            assert not await passwords.verify(stored, f"guess {i}", suspect=True)
        done.append(f"flood {i}")

    async def login() -> None:
        assert await passwords.verify(stored, "the login password")
        done.append("login")

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(new_account, i)
        await trio.testing.wait_all_tasks_blocked()  # ten hashes running or queued
        nursery.start_soon(login)
    # it took the slot the flood may not use: done after a few flood hashes at most (real
    # threads: on a loaded machine the login's thread may lag the flood's by a hash or two),
    # never behind the ten (FIFO on two shared slots put it last)
    assert done.index("login") <= 4, done


async def test_security_events_carry_structured_fields(client: Any, caplog: Any) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="tradercoin.security")
    await register(client, "alice")
    await client.post("/api/auth/login", json={"username": "ALICE", "password": "not it 123"})
    failed = [r for r in caplog.records if getattr(r, "event", None) == "login_failed"]
    assert len(failed) == 1
    record: Any = failed[0]
    assert (record.username, record.user_id, record.levelname) == ("alice", 1, "WARNING")
    assert record.address and "not it 123" not in caplog.text
