"""Issue 13: each attack that worked on a running service, replayed on a real ``tradercoin
serve`` subprocess over loopback (tests/procs.py), with the request that broke it.

Clients bind distinct loopback source addresses (127.0.0.x) to stand for distinct attackers
and victims; the service sees them as different remote addresses. Real processes, sockets
and threads: no autojump.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.procs import Child, free_port, serve_env, start_serve, start_sim
from tradercoin.store import generate_key

STRONG = "plum Tractor 93 violet"
Headers = dict[str, str]


def client(url: str, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``address``."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30)


async def register(url: str, name: str, address: str, password: str = STRONG) -> httpx.Response:
    async with client(url, address) as http:
        return await http.post("/api/auth/register", json={"username": name, "password": password})


async def login(url: str, name: str, password: str, address: str) -> httpx.Response:
    async with client(url, address) as http:
        return await http.post("/api/auth/login", json={"username": name, "password": password})


def bearer(response: httpx.Response) -> Headers:
    assert response.status_code in (200, 201), response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    """One default ``tradercoin serve`` (SQLite, embedded simulator) for the module; each
    test uses its own usernames and source addresses."""
    home = tmp_path_factory.mktemp("serve")
    child = start_serve(home, serve_env(f"sqlite:///{home}/hardening.db"))
    child.extra["home"] = home
    yield child
    child.stop()


# ---------------------------------------------------------------- 1. ASCII digits only


async def test_numbers_are_ascii_digits_and_ids_fit_64_bits(serve: Child) -> None:
    alice = bearer(await register(serve.url, "digits1", "127.0.1.1"))
    async with client(serve.url) as http:
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010"}
        placed = await http.post("/api/orders", json={**order, "price": "20000.0"}, headers=alice)
        assert placed.status_code == 201, placed.text
        own_id = placed.json()["data"]["id"]
        arabic = "".join(chr(0x0660 + int(d)) for d in str(own_id))  # the same id, ARABIC-INDIC
        for query in ("page=%C2%B2", "page_size=%C2%B2", "page=%D9%A1", "page_size=1%C2%B9"):
            answer = await http.get(f"/api/orders?{query}", headers=alice)
            assert answer.status_code == 400, (query, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "invalid_query"
        for method in ("GET", "DELETE"):
            for path in (f"/api/orders/{arabic}", "/api/orders/9223372036854775808"):
                answer = await http.request(method, path, headers=alice)
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.json()["status"] == "error"
        max_id = await http.get("/api/orders/9223372036854775807", headers=alice)
        assert max_id.status_code == 404 and max_id.json()["error"]["code"] == "order_not_found"
        still = await http.get(f"/api/orders/{own_id}", headers=alice)
        assert still.json()["data"]["status"] == "new"  # the DELETE of ١ canceled nothing
    base = serve.url.replace("http://", "ws://")
    token = alice["Authorization"][7:]
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(f"{base}/ws?token={token}&since=%C2%B2"):
            pass
    assert refused.value.status_code == 400


# ---------------------------------------------------------------- 2, 4. durable logout, throttle


async def test_logout_and_failed_logins_survive_a_restart(tmp_path: Path) -> None:
    env = serve_env(f"sqlite:///{tmp_path}/restart.db", master_key=generate_key())
    port = free_port()
    first = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env, port=port))
    try:
        await register(first.url, "restart1", "127.0.2.1")
        gone = bearer(await login(first.url, "restart1", STRONG, "127.0.2.1"))
        kept = bearer(await login(first.url, "restart1", STRONG, "127.0.2.1"))
        async with client(first.url) as http:
            assert (await http.post("/api/auth/logout", headers=gone)).status_code == 200
            assert (await http.get("/api/auth/me", headers=gone)).status_code == 401
        for _ in range(5):
            wrong = await login(first.url, "restart1", "not it at all 1", "127.0.2.2")
            assert wrong.status_code == 401
    finally:
        await trio.to_thread.run_sync(first.stop)
    second = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env, port=port))
    try:
        async with client(second.url) as http:
            assert (await http.get("/api/auth/me", headers=gone)).status_code == 401
            assert (await http.get("/api/auth/me", headers=kept)).status_code == 200
        refused = await login(second.url, "restart1", STRONG, "127.0.2.2")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert (await login(second.url, "restart1", STRONG, "127.0.2.3")).status_code == 200
    finally:
        await trio.to_thread.run_sync(second.stop)


async def test_nobody_can_lock_an_account_out_from_elsewhere(serve: Child) -> None:
    await register(serve.url, "victim1", "127.0.3.1")
    statuses = [
        (await login(serve.url, "victim1", f"guess number {i}", "127.0.3.66")).status_code
        for i in range(25)
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert (await login(serve.url, "victim1", STRONG, "127.0.3.66")).status_code == 429
    assert (await login(serve.url, "victim1", STRONG, "127.0.3.1")).status_code == 200


async def test_spraying_one_guess_per_account_is_throttled(serve: Child) -> None:
    await register(serve.url, "sprayed1", "127.0.4.1")
    statuses: list[int] = []
    for i in range(200):
        address = f"127.0.4.{100 + i % 11}"  # 11 addresses, one guess on each of 200 names
        name = "sprayed1" if i == 150 else f"spray{i:03d}"
        statuses.append((await login(serve.url, name, "Summer2024!", address)).status_code)
    assert statuses.count(429) >= 100, statuses
    assert set(statuses) <= {401, 429}
    assert (await login(serve.url, "sprayed1", STRONG, "127.0.4.200")).status_code == 200


# ---------------------------------------------------------------- 3. refused bodies close


def _raw(port: int, request: bytes, wait: float = 30.0) -> tuple[bytes, bool]:
    """Send ``request`` on a fresh connection; what came back, and whether the server closed
    the connection (EOF) rather than holding it until ``wait`` ran out."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        sock.sendall(request)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            return got, True
        return got, True


def _fds(child: Child) -> int:
    return len(os.listdir(f"/proc/{child.process.pid}/fd"))


async def test_a_refused_or_stalled_body_ends_its_connection(serve: Child) -> None:
    port = int(serve.url.rsplit(":", 1)[1])
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    )
    too_big = head % 2_000_000 + b"ab"
    got, closed = await trio.to_thread.run_sync(_raw, port, too_big)
    assert got.startswith(b"HTTP/1.1 413") and b"body_too_large" in got and closed
    stalled = head % 100 + b'{"user'
    got, closed = await trio.to_thread.run_sync(_raw, port, stalled)
    assert got.startswith(b"HTTP/1.1 4") and closed, got
    before = _fds(serve)
    socks = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(too_big)
        socks.append(sock)
    for sock in socks:
        sock.settimeout(30)
        assert await trio.to_thread.run_sync(sock.recv, 65536)  # the 413
    for sock in socks:
        while await trio.to_thread.run_sync(sock.recv, 65536):
            pass  # until the server closes it
        sock.close()
    with trio.fail_after(30):
        while _fds(serve) > before + 5:  # noqa: ASYNC110 (another process's state)
            await trio.sleep(0.2)

    async def hammer() -> None:  # concurrent closes raced Hypercorn into a crash (closing.py)
        for _ in range(40):
            got, closed = await trio.to_thread.run_sync(_raw, port, too_big)
            assert got.startswith(b"HTTP/1.1 413") and closed

    async with trio.open_nursery() as nursery:
        for _ in range(25):
            nursery.start_soon(hammer)
    async with client(serve.url) as http:
        assert (await http.get("/healthz")).status_code == 200
    assert "Error in ASGI Framework" not in serve.log.read_text()


def _trickle_headers(port: int) -> int:
    """Send a request's headers a byte every half second; how many bytes went before the
    server closed the connection (all 60 if it never did)."""
    headers = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.5)
        for sent, byte in enumerate(headers[:60]):
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    return sent
            except TimeoutError:
                continue
            except OSError:
                return sent
    return 60


async def test_headers_sent_slowly_are_cut_off(serve: Child) -> None:
    port = int(serve.url.rsplit(":", 1)[1])
    sent = await trio.to_thread.run_sync(_trickle_headers, port)
    assert sent < 60  # Hypercorn's 5 s keep-alive timer runs until the headers are complete


# ---------------------------------------------------------------- 5. registration


async def test_registrations_are_limited_per_address_and_overall(tmp_path: Path) -> None:
    env = serve_env(f"sqlite:///{tmp_path}/reg.db", TRADERCOIN_REGISTRATIONS_PER_HOUR="14")
    child = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env))
    try:
        one = [await register(child.url, f"flood{i:02d}", "127.0.5.1") for i in range(11)]
        assert [r.status_code for r in one] == [201] * 10 + [429]
        assert int(one[-1].headers["Retry-After"]) > 0
        others = [await register(child.url, f"other{i}", f"127.0.5.{10 + i}") for i in range(5)]
        assert [r.status_code for r in others] == [201] * 4 + [429]  # 14 in the hour, overall
        assert (await login(child.url, "flood00", STRONG, "127.0.5.99")).status_code == 200
    finally:
        await trio.to_thread.run_sync(child.stop)


def _invite(tmp_path: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tradercoin.cli", "users", "invite", "--count", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


async def test_invite_and_closed_registration(tmp_path: Path) -> None:
    env = serve_env(f"sqlite:///{tmp_path}/invite.db", TRADERCOIN_REGISTRATION="invite")
    child = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env))
    try:
        code = await trio.to_thread.run_sync(_invite, tmp_path, env)
        body = {"username": "invited1", "password": STRONG}
        async with client(child.url) as http:
            assert (await http.post("/api/auth/register", json=body)).status_code == 403
            wrong = await http.post("/api/auth/register", json={**body, "invite": code + "x"})
            assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_invite"
            ok = await http.post("/api/auth/register", json={**body, "invite": code})
            assert ok.status_code == 201, ok.text
            again = {"username": "invited2", "password": STRONG, "invite": code}
            assert (await http.post("/api/auth/register", json=again)).status_code == 403
    finally:
        await trio.to_thread.run_sync(child.stop)
    closed = await trio.to_thread.run_sync(
        lambda: start_serve(tmp_path, {**env, "TRADERCOIN_REGISTRATION": "closed"})
    )
    try:
        answer = await register(closed.url, "late1", "127.0.0.1")
        assert answer.status_code == 403 and "closed" in answer.json()["error"]["message"]
        assert (await login(closed.url, "invited1", STRONG, "127.0.0.1")).status_code == 200
    finally:
        await trio.to_thread.run_sync(closed.stop)


# ---------------------------------------------------------------- 6. quantities


@pytest.fixture
async def external(tmp_path: Path) -> AsyncIterator[tuple[Child, Child, Headers, str]]:
    """A ``tradercoin sim`` and a ``serve`` trading on it; a user holding a sim account."""
    sim = await trio.to_thread.run_sync(lambda: start_sim(tmp_path, accounts=1))
    env = serve_env(
        f"sqlite:///{tmp_path}/ext.db",
        TRADERCOIN_EXCHANGE=sim.url,
        TRADERCOIN_EXCHANGE_WS=sim.extra["ws_url"],
    )
    child = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env))
    try:
        user = bearer(await register(child.url, "trader1", "127.0.0.1"))
        account = sim.extra["accounts"][0]
        async with client(child.url) as http:
            stored = await http.put("/api/credentials", json=account, headers=user)
            assert stored.status_code == 200, stored.text
        yield sim, child, user, account["api_key"]
    finally:
        await trio.to_thread.run_sync(child.stop)
        await trio.to_thread.run_sync(sim.stop)


async def test_quantities_are_checked_before_the_exchange_sees_them(
    external: tuple[Child, Child, Headers, str],
) -> None:
    sim, child, user, api_key = external
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "20000.0"}
    async with client(child.url) as http:
        long = await http.post(
            "/api/orders",
            json={**order, "quantity": "0.0100000000000000000000000000000"},
            headers=user,
        )
        assert long.status_code == 400 and long.json()["error"]["code"] == "too_many_digits"
        tiny = await http.post("/api/orders", json={**order, "quantity": "0.0001"}, headers=user)
        assert tiny.status_code == 400, tiny.text  # below the 0.001 step
        zeros = await http.post("/api/orders", json={**order, "quantity": "0.0100"}, headers=user)
        assert zeros.status_code == 201, zeros.text
        listed = (await http.get("/api/orders", headers=user)).json()
        async with httpx.AsyncClient(base_url=sim.url) as exchange:
            truth = (await exchange.get("/sim/admin/orders", params={"api_key": api_key})).json()
    assert [o["quantity"] for o in listed["data"]] == ["0.010"]
    assert [o["orig_qty"] for o in truth] == ["0.010"]  # the exchange's own record


# ---------------------------------------------------------------- 7, 8. Origin, Host, CSRF


async def test_origin_is_compared_exactly_and_host_must_be_ours(serve: Child) -> None:
    port = int(serve.url.rsplit(":", 1)[1])
    token = (await register(serve.url, "origin1", "127.0.6.1")).json()["token"]
    cookie = {"Cookie": f"tc_session={token}", "Content-Type": "application/json"}
    keys = {"api_key": "AAAAAAAAAAAA1234", "api_secret": "BBBBBBBBBBBBBBBB"}
    async with client(serve.url) as http:
        for origin in (
            f"https://127.0.0.1:{port}",
            f"http://127.0.0.1:{port + 1}",
            f"http://127.0.0.1:{port}.evil.example",
            "null",
        ):
            answer = await http.put(
                "/api/credentials", json=keys, headers={**cookie, "Origin": origin}
            )
            assert answer.status_code == 403, (origin, answer.text)
        ours = {**cookie, "Origin": f"http://127.0.0.1:{port}"}
        assert (await http.get("/api/credentials", headers=ours)).json()["data"]["key_last4"]
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        body = {"username": "origin1", "password": STRONG}
        refused = await http.post("/api/auth/login", json=body, headers=rebound)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_host"
        http.cookies.clear()
    base = serve.url.replace("http://", "ws://")
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(
            f"{base}/ws?token={token}", extra_headers=[("Origin", f"https://127.0.0.1:{port}")]
        ):
            pass
    assert rejected.value.status_code == 403


async def test_cookie_logout_needs_the_csrf_checks(serve: Child) -> None:
    port = int(serve.url.rsplit(":", 1)[1])
    token = (await register(serve.url, "logout1", "127.0.6.2")).json()["token"]
    cookie = {"Cookie": f"tc_session={token}"}
    async with client(serve.url) as http:
        form = await http.post(
            "/api/auth/logout",
            content=b"x=1",
            headers={**cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 403
        foreign = {**cookie, "Content-Type": "application/json", "Origin": "http://evil.example"}
        assert (await http.post("/api/auth/logout", json={}, headers=foreign)).status_code == 403
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200  # neither cross-site attempt logged the user out
        own = {**cookie, "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"}
        assert (await http.post("/api/auth/logout", json={}, headers=own)).status_code == 200
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


# ---------------------------------------------------------------- risks: accounts


async def test_usernames_are_normalised_and_reserved_names_refused(serve: Child) -> None:
    assert (await register(serve.url, "Carol1", "127.0.7.1")).status_code == 201
    for twin in ("CAROL1", "carol1", "cArOl1"):
        answer = await register(serve.url, twin, "127.0.7.2")
        assert answer.status_code == 409, (twin, answer.text)
    for reserved in ("admin", "Root", "OPERATOR", "administrator"):
        answer = await register(serve.url, reserved, "127.0.7.3")
        assert answer.status_code == 400 and "reserved" in answer.json()["error"]["message"]
    same = await login(serve.url, "CAROL1", STRONG, "127.0.7.4")
    assert same.json()["data"]["username"] == "carol1"


async def test_weak_passwords_are_refused_with_a_reason(serve: Child) -> None:
    for i, (password, reason) in enumerate(
        (
            ("password1", "common"),
            (" " * 8, "spaces"),
            ("weakling7", "username"),
            ("qwertyuiop", "common"),
            ("aaaaaaaaaaaa", "easy to guess"),
        )
    ):
        name = "weakling7"
        answer = await register(serve.url, name, f"127.0.8.{i + 1}", password=password)
        assert answer.status_code == 400, (password, answer.text)
        message = answer.json()["error"]["message"]
        assert reason in message and message[0].islower()
        assert not password.strip() or password not in message  # never echoed
    assert (await register(serve.url, "weakling7", "127.0.8.9")).status_code == 201


# ---------------------------------------------------------------- risks: log, metrics, headers


async def test_security_events_are_logged_without_secrets(serve: Child) -> None:
    await register(serve.url, "logged1", "127.0.9.1")
    await login(serve.url, "logged1", "wrong but long 1", "127.0.9.2")
    async with client(serve.url, "127.0.9.3") as http:
        await http.post("/api/auth/login", json={}, headers={"Origin": "http://evil.example"})
    log = serve.log.read_text()
    lines = [line for line in log.splitlines() if "tradercoin.security" in line]
    assert any("login_failed: user 'logged1'" in line and "127.0.9.2" in line for line in lines)
    assert any("registered: user 'logged1'" in line and "127.0.9.1" in line for line in lines)
    assert any("origin_refused" in line and "127.0.9.3" in line for line in lines)
    assert "wrong but long 1" not in log and STRONG not in log


async def test_metrics_are_for_operators_or_the_metrics_address(tmp_path: Path) -> None:
    metrics_port = free_port()
    env = serve_env(
        f"sqlite:///{tmp_path}/m.db", TRADERCOIN_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}"
    )
    child = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env))
    try:
        user = bearer(await register(child.url, "metric1", "127.0.0.1"))
        async with client(child.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", headers=user)).status_code == 403
        async with client(f"http://127.0.0.1:{metrics_port}") as side:
            scraped = await side.get("/metrics")
            assert scraped.status_code == 200 and "tradercoin_http_requests" in scraped.text
            assert (await side.get("/api/orders", headers=user)).status_code == 404
            assert (await side.post("/api/auth/login", json={})).status_code == 404
    finally:
        await trio.to_thread.run_sync(child.stop)


async def test_headers_no_store_and_a_csp_without_inline_script(serve: Child) -> None:
    answer = await register(serve.url, "headers1", "127.0.10.1")
    user = bearer(answer)
    async with client(serve.url) as http:
        logged = await http.post(
            "/api/auth/login", json={"username": "headers1", "password": STRONG}
        )
        await http.get("/api/orders", headers=user)
        cached = await http.get("/api/orders", headers=user)  # the ASGI fast path's answer
        page = await http.get("/")
        script = await http.get("/static/main.js")
    for response in (answer, logged, cached):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    html = page.text.lower()
    for part in html.split("<script")[1:]:
        attributes, _, rest = part.partition(">")
        assert "src=" in attributes and rest.startswith("</script>")  # no inline script
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)  # no inline event handlers


# ---------------------------------------------------------------- risks: files, JSON, /ws


async def test_database_files_are_owner_only_and_a_key_beside_them_warns(tmp_path: Path) -> None:
    env = serve_env("sqlite:///./tradercoin.db")
    del env["TRADERCOIN_MASTER_KEY"]  # the dev key file, beside the db:
    env["TRADERCOIN_MASTER_KEY_FILE"] = "./tradercoin.key"  # (by default it is in the data dir)
    child = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env))
    try:
        await register(child.url, "files1", "127.0.0.1")
        for name in ("tradercoin.db", "tradercoin.db-wal", "tradercoin.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
        assert "master key file" in child.log.read_text()
    finally:
        await trio.to_thread.run_sync(child.stop)


async def test_duplicate_json_keys_are_refused(serve: Child) -> None:
    await register(serve.url, "dupkey1", "127.0.11.1")
    body = (
        b'{"username": "dupkey1", "password": "nothing like it 1", "password": "'
        + STRONG.encode()
        + b'"}'
    )
    async with client(serve.url, "127.0.11.2") as http:
        answer = await http.post(
            "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "duplicate_key"


async def test_unauthenticated_sockets_are_capped_and_closed(serve: Child) -> None:
    base = serve.url.replace("http://", "ws://")
    async with trio.open_nursery() as nursery:
        waiting: list[Any] = []
        opened = trio.Event()

        async def hold() -> None:
            async with open_websocket_url(f"{base}/ws") as ws:
                waiting.append(ws)
                if len(waiting) == 8:
                    opened.set()
                await trio.sleep_forever()

        for _ in range(8):
            nursery.start_soon(hold)
        with trio.fail_after(30):
            await opened.wait()
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"{base}/ws"):
                pass
        assert refused.value.status_code == 429
        with trio.fail_after(30):
            for ws in waiting:
                while not ws.closed:  # noqa: ASYNC110 (trio-websocket has no close event)
                    await trio.sleep(0.1)
        assert {ws.closed.code for ws in waiting} == {1008}
        nursery.cancel_scope.cancel()
