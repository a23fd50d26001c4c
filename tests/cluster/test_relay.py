"""Events cross instances: a user owned by instance a, watched from instance b.

Oracle: what a session attached to the owner's actor itself receives (a real peer), and the
simulator's orders. Real PostgreSQL and worker threads, so real time (no autojump); each wait
is bounded only to turn a hang into a failure.
"""

from __future__ import annotations

import psycopg
import trio
from sqlalchemy.engine import make_url

from tests.cluster.conftest import B, open_cluster
from tradercoin.testing import TestSession

HANG = 30  # seconds: a wait this long means the test is stuck, not slow


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _updates(tab: TestSession) -> list[tuple[int, int, str]]:
    return [(m["seq"], m["data"]["id"], m["data"]["status"]) for m in tab.messages("order_update")]


async def _fill(user: object, tabs: list[TestSession], n: int) -> list[int]:
    ids = []
    for _ in range(n):
        order = await user.place("BTCUSDT", "BUY", "MARKET", "0.01")  # type: ignore[attr-defined]
        for tab in tabs:
            await tab.wait_for_status(order.id, "filled")
        ids.append(order.id)
    return ids


async def test_a_session_on_b_gets_the_owners_events_once_in_order(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("alice")
            truth = await on_a.open_session()  # attached to the actor itself, on a
            remote = await on_b.open_ws()  # /ws on b, which does not own alice
            await _fill(on_a, [truth, remote], 3)
            assert _updates(remote) == _updates(truth)
            seqs = [seq for seq, _, _ in _updates(remote)]
            assert seqs == list(range(1, len(seqs) + 1))
            assert cluster.b.service.relay.statistics()["delivered"] >= len(seqs)

            # the tab goes away, misses two fills, and resumes on b with ?since=
            last = seqs[-1]
            remote.close()
            await _fill(on_a, [truth], 2)
            resumed = await on_b.open_ws(since=last)
            await _fill(on_a, [truth, resumed], 1)
            assert _updates(resumed) == [u for u in _updates(truth) if u[0] > last]
            assert not resumed.messages("resync")


async def test_the_orders_page_on_b_follows_changes_made_on_a(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("bob")
            http, headers = cluster.b.http, on_b.headers
            cache = cluster.b.service.ctx.orders_cache
            first = await http.get("/api/orders", headers=headers)
            assert first.json()["total"] == 0
            await http.get("/api/orders", headers=headers)
            assert cache.hits == 1  # b serves the page from its cache

            order = await on_a.place("BTCUSDT", "BUY", "LIMIT", "0.01", "20000")
            while True:  # polling b as a browser would, until its page shows the order
                page = (await http.get("/api/orders", headers=headers)).json()
                if page["total"] == 1:
                    break
                await trio.sleep(0.05)
            assert page["data"][0]["id"] == order.id
            assert cache.invalidations >= 1


async def test_the_relay_catches_up_after_losing_its_listen_connection(
    pg_database_url: str,
) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("carol")
            truth = await on_a.open_session()
            remote = await on_b.open_ws()
            await _fill(on_a, [truth, remote], 1)
            relay = cluster.b.service.relay
            relay.backoff = (3.0, 3.0)  # long enough for two places to commit unheard
            with psycopg.connect(libpq(pg_database_url), autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                ).fetchall()
            assert len(killed) == 2  # a's and b's relays
            while relay.listening:  # noqa: ASYNC110 (until b's thread has seen it)
                await trio.sleep(0.01)
            heard = relay.notifications
            for price in ("20000", "20001"):  # committed at once, nobody listening on b
                await on_a.place("BTCUSDT", "BUY", "LIMIT", "0.01", price)
            assert relay.notifications == heard  # b heard nothing of them
            # the seq the two places reached (to wait on; the oracle is a's own session)
            newest = await cluster.a.service.store.latest_seq(on_a.user_id)
            await truth.wait_for(lambda m: m["type"] == "order_update" and m["seq"] == newest)
            # no commit after it: only a catch-up brings it to b
            await remote.wait_for(lambda m: m["type"] == "order_update" and m["seq"] == newest)
            upto = newest  # later changes (a fill of the new orders) may still be arriving

            def seen(tab: TestSession) -> list[tuple[int, int, str]]:
                return [u for u in _updates(tab) if u[0] <= upto]

            assert seen(remote) == seen(truth)
            assert relay.reconnects == 1
            assert relay.caught_up == 1


async def test_sessions_stay_attached_when_the_user_moves_away(pg_database_url: str) -> None:
    with trio.fail_after(HANG):
        async with open_cluster(pg_database_url) as cluster:
            on_a, on_b = await cluster.user_on_a("dora")
            tab = await on_a.open_ws()  # on a, attached to a's own actor
            await _fill(on_a, [tab], 1)
            # dora moves to b: b starts her actor, a stops its own keeping her sessions
            cluster.owners[on_a.user_id] = B
            await cluster.b.supervisor.credentials_changed(on_a.user_id)
            supervisor = cluster.a.supervisor
            sessions = supervisor.sessions.peek(on_a.user_id)
            assert sessions is not None and len(sessions) == 1
            handle = supervisor._handles.pop(on_a.user_id)  # what releasing a user does
            handle.scope.cancel()
            await handle.done.wait()
            supervisor._close(handle, keep_sessions=True)
            assert supervisor.actor(on_a.user_id) is None

            truth = await on_b.open_session()  # on b's actor, the owner now
            await _fill(on_b, [truth, tab], 2)
            assert _updates(tab)[-len(_updates(truth)) :] == _updates(truth)
            seqs = [seq for seq, _, _ in _updates(tab)]
            assert seqs == list(range(1, len(seqs) + 1))
            assert supervisor.sessions.peek(on_a.user_id) is sessions  # never dropped...
            assert len(sessions) == 1
            assert len(tab.messages("hello")) == 1  # ...on the same connection all along
            assert not tab.messages("resync")
