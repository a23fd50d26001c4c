"""Our exchange client against the simulator over loopback, beside python-binance's sync Client.

    .venv/bin/python -m bench.exchange [--users 200] [--seconds 10] [--op open_orders]

(run as a module: ``bench/http.py`` would shadow the stdlib ``http`` as a script path)

Starts ``tradercoin sim --port P --accounts N`` as a separate process, then:

* **tradercoin**: one trio process, one ``BinanceFutures`` over one shared httpx pool, N users
  (one ``AccountClient`` each) looping concurrently;
* **python-binance**: N threads, one sync ``binance.Client`` per user (its own requests
  session), ``FUTURES_URL`` pointed at the simulator.

Each runs in a fresh process with its own simulator and prints one JSON line: requests/s,
client CPU ms per request (the benchmark process's user+system time), the simulator's CPU ms
per request (from /proc), the client's max RSS, errors by kind, the load average and the
interpreter. ``--op`` picks the request: ``open_orders`` (GET /fapi/v1/openOrders?symbol=,
the actors' poll) or ``get_order`` (GET /fapi/v1/order by client id, -2013 answers included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from tradercoin.clock import system_clock
from tradercoin.exchange.client import AccountClient, BinanceFutures, http_client
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.protocol import Credentials

SYMBOL = "BTCUSDT"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_sim(users: int, extra: list[str]) -> tuple[subprocess.Popen[str], str, list[Credentials]]:
    """The simulator as its own process; returns it, its REST URL and the accounts' keys."""
    port = _free_port()
    tradercoin = str(Path(sys.executable).parent / "tradercoin")
    cmd = [tradercoin, "sim", "--host", "127.0.0.1", "--port", str(port), "--ws-port", "0"]
    cmd += ["--accounts", str(users)]
    proc = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    keys = []
    while len(keys) < users:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"simulator exited early ({proc.wait()})")
        if line.startswith("{"):
            obj = json.loads(line)
            keys.append(Credentials(obj["api_key"], obj["api_secret"]))
    _wait_port(port)
    return proc, f"http://127.0.0.1:{port}", keys


def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("simulator did not start listening")


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait() -> float:
    """Seconds this process's main thread spent runnable but waiting for a CPU."""
    return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9


class Meter:
    """Counts requests and errors, and the CPU of this process and of the simulator."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid
        self.done = 0
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()

    def start(self) -> None:
        self.wall, self.cpu, self.sim_cpu = (
            time.perf_counter(),
            time.process_time(),
            _proc_cpu(self.sim_pid),
        )

    def result(self, client: str, users: int, op: str) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        sim_cpu = _proc_cpu(self.sim_pid) - self.sim_cpu
        n = max(self.done, 1)
        return {
            "bench": "exchange",
            "client": client,
            "op": op,
            "users": users,
            "requests": self.done,
            "seconds": round(wall, 2),
            "req_per_s": round(self.done / wall, 1),
            "client_cpu_ms_per_req": round(cpu * 1000 / n, 3),
            "sim_cpu_ms_per_req": round(sim_cpu * 1000 / n, 3),
            "errors": dict(self.errors),
            "client_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "executable": sys.executable,
        }


async def _our_user(account: AccountClient, op: str, end: float, meter: Meter) -> None:
    call: Callable[[], Any] = (
        (lambda: account.open_orders(SYMBOL))
        if op == "open_orders"
        else (lambda: account.get_order(SYMBOL, client_order_id="bench-missing"))
    )
    while trio.current_time() < end:
        try:
            await call()
        except ExchangeError as exc:
            meter.errors[type(exc).__name__] += 1
            if op == "open_orders":
                continue
        meter.done += 1


async def run_ours(
    url: str, keys: list[Credentials], seconds: float, op: str, meter: Meter, in_flight: int
) -> None:
    async with http_client(max_connections=in_flight) as http:
        exchange = BinanceFutures(http, clock=system_clock(), rest_url=url, max_in_flight=in_flight)
        await exchange.sync_time()
        accounts = [exchange.for_account(k) for k in keys]
        async with trio.open_nursery() as nursery:  # warm-up: one request each, pool filled
            for account in accounts:
                nursery.start_soon(_our_user, account, op, trio.current_time() + 0.5, Meter(0))
        meter.start()
        end = trio.current_time() + seconds
        async with trio.open_nursery() as nursery:
            for account in accounts:
                nursery.start_soon(_our_user, account, op, end, meter)


def _binance_user(creds: Credentials, url: str, op: str, end: float, meter: Meter | None) -> None:
    from binance.client import Client
    from binance.exceptions import BinanceAPIException

    client = Client(creds.api_key, creds.api_secret, ping=False)
    client.FUTURES_URL = f"{url}/fapi"
    while time.perf_counter() < end:
        try:
            if op == "open_orders":
                client.futures_get_open_orders(symbol=SYMBOL)
            else:
                client.futures_get_order(symbol=SYMBOL, origClientOrderId="bench-missing")
        except BinanceAPIException as exc:
            if meter is not None:
                with meter.lock:
                    meter.errors[f"code {exc.code}"] += 1
            if op == "open_orders":
                continue
        if meter is not None:
            with meter.lock:
                meter.done += 1


def run_python_binance(
    url: str, keys: list[Credentials], seconds: float, op: str, meter: Meter
) -> None:
    def batch(duration: float, m: Meter | None) -> None:
        end = time.perf_counter() + duration
        threads = [threading.Thread(target=_binance_user, args=(k, url, op, end, m)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    batch(0.5, None)
    meter.start()
    batch(seconds, meter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--op", choices=["open_orders", "get_order"], default="open_orders")
    parser.add_argument("--in-flight", type=int, default=8, help="our max_in_flight")
    parser.add_argument("--only", choices=["tradercoin", "python-binance"])
    parser.add_argument(
        "--sim-arg",
        action="append",
        default=["--weight-limit=100000000"],
        help="passed to tradercoin sim (default lifts the weight limit)",
    )
    args = parser.parse_args()
    if args.only is None:  # each client in a fresh process of its own, for a clean max RSS
        for only in ("tradercoin", "python-binance"):
            subprocess.run([sys.executable, "-m", "bench.exchange", *sys.argv[1:], "--only", only],
                           check=True, cwd=ROOT)  # fmt: skip
        return
    proc, url, keys = start_sim(args.users, args.sim_arg)
    try:
        meter = Meter(proc.pid)
        if args.only == "tradercoin":
            waited = _runqueue_wait()
            trio.run(run_ours, url, keys, args.seconds, args.op, meter, args.in_flight)
            result = {
                **meter.result("tradercoin", args.users, args.op),
                "in_flight": args.in_flight,
                # time our one thread was runnable but not running: CPU it was denied
                "runqueue_wait_s_per_s": round((_runqueue_wait() - waited) / args.seconds, 2),
            }
        else:
            run_python_binance(url, keys, args.seconds, args.op, meter)
            result = meter.result("python-binance-threads", args.users, args.op)
        print(json.dumps(result), flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
