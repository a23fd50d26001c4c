"""Instances as real processes: SQLite keeps one ``tradercoin serve`` per file, and each
instance's exchange traffic leaves from its own ``--egress-address`` (the simulator process
counts weight and connections per client IP). No PostgreSQL, no HAProxy needed."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from click.testing import CliRunner

from tests.procs import Child, free_port, serve_env, start_serve, start_sim
from tests.reliability.live import register
from tradercoin.cli import main as cli

pytestmark = pytest.mark.slow


def _second_serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    port = str(free_port())
    return subprocess.run(
        [sys.executable, "-m", "tradercoin.cli", "serve", "--port", port],
        env={**env, "TRADERCOIN_PORT": port},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_instance_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    database = tmp_path / "one.db"
    env = serve_env(f"sqlite:///{database}")
    first = start_serve(tmp_path, env)
    try:
        second = _second_serve(tmp_path, env)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith("tradercoin: error: database ")
        assert str(database) in second.stderr
        assert httpx.get(f"{first.url}/healthz").status_code == 200  # the first one serves on
    finally:
        first.kill()  # SIGKILL: the kernel drops the lock with the process
    again = start_serve(tmp_path, env, log_name="again.log")
    assert again.stop() == 0


@pytest.mark.parametrize(
    ("address", "says"), [("not-an-ip", "is not an IP address"), ("192.0.2.1", "cannot send from")]
)
def test_an_egress_address_this_machine_lacks_is_a_config_error(
    tmp_path: Path, address: str, says: str
) -> None:
    args = ["serve", "--database-url", f"sqlite:///{tmp_path}/x.db", "--egress-address", address]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert says in result.output and result.output.count("\n") == 1


async def _sim_statistics(sim: Child) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        answer: dict[str, Any] = (await http.get("/sim/admin/statistics")).json()
    return answer


async def _user_with_keys(url: str, name: str, account: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        headers = await register(http, name)
        keys = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
        stored = await http.put("/api/credentials", json=keys, headers=headers)
        assert stored.status_code == 200, stored.text


async def test_two_instances_are_two_ips_at_the_exchange(tmp_path: Path) -> None:
    sim = await trio.to_thread.run_sync(lambda: start_sim(tmp_path, accounts=2))
    instances: list[Child] = []
    try:
        # the hub's shared connections on one, a connection per user on the other
        for n, (address, mode) in enumerate((("127.0.0.2", "hub"), ("127.0.0.3", "per-user"))):
            env = serve_env(
                f"sqlite:///{tmp_path}/i{n}.db",
                TRADERCOIN_EXCHANGE=sim.url,
                TRADERCOIN_EXCHANGE_WS=sim.extra["ws_url"],
                TRADERCOIN_EGRESS_ADDRESS=address,
                TRADERCOIN_STREAM_MODE=mode,
            )
            start = functools.partial(start_serve, tmp_path, env, log_name=f"serve{n}.log")
            child = await trio.to_thread.run_sync(start)
            instances.append(child)
            await _user_with_keys(child.url, f"egress{n}", sim.extra["accounts"][n])
        with trio.fail_after(30):  # each instance's hub connects for its one user
            while True:
                stats = await _sim_statistics(sim)
                if len(stats["stream_connections_by_ip"]) == 2:
                    break
                await trio.sleep(0.2)
    finally:
        for child in (*instances, sim):
            await trio.to_thread.run_sync(child.stop)
    assert stats["stream_connections_by_ip"] == {"127.0.0.2": 1, "127.0.0.3": 1}
    weights = stats["weight_total_by_ip"]
    assert set(weights) == {"127.0.0.2", "127.0.0.3"}  # never 127.0.0.1: all traffic bound
    assert all(w > 0 for w in weights.values()) and sum(weights.values()) == stats["weight_used"]
