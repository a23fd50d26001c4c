"""Commands reach the owner: REST calls on instance b for a user owned by instance a.

Oracle: the simulator's orders of the user's account (what the exchange really got).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import trio

from tests.cluster.conftest import B, open_cluster
from tradercoin.cluster.internal import HEADER
from tradercoin.config import PollPolicy
from tradercoin.metrics import uncatalogued

HANG = 30
MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


async def test_a_place_on_b_is_placed_once_by_the_owner_even_when_retried(
    pg_database_url: str,
) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("alice")
            cluster.b.service.ctx.supervisor.calls.attempt_timeout = 2.0
            lost: list[int] = []

            async def lose_first_answer(
                request: httpx.Request, forward: Callable[[], Awaitable[httpx.Response]]
            ) -> httpx.Response:
                with trio.CancelScope(shield=True):  # a got it and acts on it...
                    response = await forward()
                if request.url.path.endswith("/place") and not lost:
                    lost.append(response.status_code)
                    await trio.sleep_forever()  # ...but b never hears the answer
                return response

            cluster.peers.hook = lose_first_answer
            answer = await cluster.b.http.post("/api/orders", json=MARKET, headers=on_b.headers)
            assert answer.status_code == 201, answer.text
            assert lost == [200]  # the fault fired: the first answer was lost after placing
            assert cluster.peers.calls.count(f"/internal/users/{on_a.user_id}/place") == 2
            placed = on_a.truth()
            assert len(placed) == 1
            assert answer.json()["data"]["client_order_id"] == placed[0].client_order_id


async def test_a_client_order_id_given_twice_places_once(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("bob")
            body = {**MARKET, "client_order_id": "my-order.42:x/y_z"}
            first = await cluster.b.http.post("/api/orders", json=body, headers=on_b.headers)
            again = await cluster.a.http.post("/api/orders", json=body, headers=on_a.headers)
            assert first.status_code == again.status_code == 201
            assert first.json()["data"]["id"] == again.json()["data"]["id"]
            assert [o.client_order_id for o in on_a.truth()] == ["my-order.42:x/y_z"]


async def test_cancel_and_account_on_b_reach_the_owner(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("carol")
            order = await on_a.place("BTCUSDT", "BUY", "LIMIT", "0.01", "20000")
            http, headers = cluster.b.http, on_b.headers
            canceled = await http.delete(f"/api/orders/{order.id}", headers=headers)
            assert canceled.json()["data"]["status"] == "canceled"
            assert [o.status for o in on_a.truth()] == ["CANCELED"]
            missing = await http.delete("/api/orders/999999", headers=headers)
            assert missing.status_code == 404
            account = await http.get("/api/account", headers=headers)
            assert account.status_code == 200, account.text


async def test_no_owner_answers_503_with_retry_after(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("dave")
            calls = cluster.b.service.ctx.supervisor.calls
            calls.timeout = 1.0
            del cluster.owners[on_a.user_id]  # a crashed; nobody took dave over yet
            answer = await cluster.b.http.post("/api/orders", json=MARKET, headers=on_b.headers)
            assert answer.status_code == 503
            assert int(answer.headers["Retry-After"]) >= 1
            message = answer.json()["error"]["message"]
            assert message.startswith("No instance") and message.endswith(".")
            assert calls.unanswered == 1
            assert on_a.truth() == []


async def test_an_owner_that_moved_is_followed_once(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("erin")
            await cluster.b.supervisor.credentials_changed(on_a.user_id)  # b's actor, ready
            user = on_a.user_id

            async def move_to_b(
                request: httpx.Request, forward: Callable[[], Awaitable[httpx.Response]]
            ) -> httpx.Response:
                if request.url.host == "a.test":
                    cluster.owners[user] = B  # erin moves while b's call is on its way to a
                return await forward()

            cluster.peers.hook = move_to_b
            answer = await cluster.b.http.post("/api/orders", json=MARKET, headers=on_b.headers)
            assert answer.status_code == 201, answer.text
            assert cluster.peers.calls == [f"/internal/users/{user}/place"] * 2
            assert len(on_a.truth()) == 1


async def test_a_user_without_keys_is_a_409_not_a_503(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            user = await cluster.b.store.create_user("frank", "not-a-real-hash")
            token = cluster.b.service.ctx.tokens.issue(user.id)
            headers = {"Authorization": f"Bearer {token}"}
            answer = await cluster.b.http.post("/api/orders", json=MARKET, headers=headers)
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == "no_exchange_keys"


async def test_internal_calls_must_be_signed_and_are_not_documented(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, _ = await cluster.user_on_a("gina")
            path = f"/internal/users/{on_a.user_id}/place"
            auth = cluster.a.service.ctx.supervisor.auth
            body = b"{}"
            for header in ({}, {HEADER: "1.abc"}, {HEADER: auth.sign(path + "x", body)}):
                answer = await cluster.a.http.post(path, content=body, headers=header)
                assert answer.status_code == 401
                assert answer.json()["error"]["code"] == "unauthorized"
            assert on_a.truth() == []
            spec = (await cluster.a.http.get("/openapi.json")).json()
            assert not [p for p in spec["paths"] if p.startswith("/internal")]


async def test_policy_and_key_changes_on_b_reach_the_owner(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("hana")
            router = cluster.b.service.ctx.supervisor
            policy = PollPolicy(interval=7.0, fast_interval=7.0, reconcile_interval=7.0)
            await router.set_poll_policy(on_a.user_id, policy, updated_by=None)
            await on_a.actor.get_account()  # a FIFO mailbox: the policy was handled before
            assert on_a.status().effective_interval == 7.0  # a's actor uses it now

            removed = await cluster.b.http.delete("/api/credentials", headers=on_b.headers)
            assert removed.status_code == 200
            assert cluster.a.supervisor.actor(on_a.user_id) is None  # a stopped its actor
            assert cluster.peers.calls == [
                f"/internal/users/{on_a.user_id}/poll_policy",
                f"/internal/users/{on_a.user_id}/credentials",
            ]


async def test_the_cluster_parts_are_catalogued_metrics(pg_database_url: str) -> None:
    async with open_cluster(pg_database_url) as cluster:
        parts = cluster.b.service.ctx.metrics.parts
        assert {"relay", "owners"} <= set(parts)
        assert uncatalogued({k: parts[k] for k in ("relay", "owners")}) == []
