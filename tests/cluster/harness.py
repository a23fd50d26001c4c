"""Several ``tradercoin serve`` processes on one throwaway PostgreSQL, behind HAProxy.

:class:`Deployment` runs, each as a real process on loopback: a PostgreSQL cluster of its own
(:mod:`tests.pgcluster`: stop, start, restart), ``tradercoin sim``, N instances (each its own
port, ``--instance-id i<n>``, ``--egress-address 127.0.0.<n+2>`` so the simulator sees N
IPs, one shared master key, PostgreSQL reached through a :class:`~tests.cluster.dblink.DbLink`
of its own) and HAProxy in front, configured from ``deploy/haproxy.cfg`` with the ports
swapped in. It can SIGKILL, SIGSTOP and SIGCONT one instance, cut one off from PostgreSQL
and heal it, restart PostgreSQL, restart every instance in turn, and add one more.

Everything here is synchronous (subprocess and blocking HTTP): tests call it through
``trio.to_thread.run_sync``; ``bench/cluster.py`` calls it directly. Traffic and the oracle
are in :mod:`tests.cluster.client`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.dblink import DbLink
from tests.pgcluster import Cluster, find_bindir, throwaway_cluster
from tests.procs import Child, ProcessFailed, free_port, start_serve, start_sim
from tradercoin.store import generate_key

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy.cfg"
OPERATOR = ("operator", "operator pass 1")
READY_TIMEOUT = 60.0


def haproxy_binary() -> str | None:
    """Debian's haproxy (``/usr/sbin`` is not on every PATH), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def missing_parts() -> str | None:
    """Why a deployment cannot run here (None when it can)."""
    if haproxy_binary() is None:
        return "haproxy is not installed (apt-get install haproxy)"
    if find_bindir() is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    return None


def haproxy_config(port: int, servers: list[tuple[str, int]], stats_socket: Path) -> str:
    """``deploy/haproxy.cfg`` with its frontend on ``port``, one ``server`` line per
    ``(name, port)`` and an admin socket for :meth:`HAProxy.servers_up`."""
    lines = []
    for line in HAPROXY_CONFIG.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("server "):
            continue
        if stripped.startswith("bind "):
            line = f"    bind 127.0.0.1:{port}"
        lines.append(line)
        if stripped == "global":
            lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    lines += [f"    server {name} 127.0.0.1:{server_port}" for name, server_port in servers]
    return "\n".join(lines) + "\n"


@dataclass(eq=False)
class HAProxy:
    """HAProxy in the foreground; :meth:`reload` starts a new process for a new config (the
    old one hands over its listener and serves its open connections until they close)."""

    root: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.root / "haproxy.sock"

    def reload(self, servers: list[tuple[str, int]]) -> None:
        """Run the config for ``servers``; returns once the new process listens."""
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, servers, self.socket_path))
        command = [haproxy_binary() or "haproxy", "-db", "-f", str(config)]
        if self.processes:
            command += ["-sf", str(self.processes[-1].pid)]
        with (self.root / "haproxy.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        _wait(lambda: process.poll() is None and self._answers(), "haproxy listening", 15)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def servers_up(self) -> set[str]:
        """The servers HAProxy's health checks count UP now."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            row["svname"]
            for row in rows
            if row["svname"] not in ("FRONTEND", "BACKEND") and row["status"] == "UP"
        }

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@dataclass(eq=False)
class Instance:
    """One ``tradercoin serve`` of the deployment; ``child`` is None while it is down."""

    number: int
    port: int
    child: Child | None = None
    starts: int = 0

    @property
    def id(self) -> str:
        return f"i{self.number}"

    @property
    def egress(self) -> str:
        return f"127.0.0.{self.number + 2}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.child is not None, f"{self.id} is not running"
        return self.child.process.pid


@dataclass(eq=False)
class Deployment:
    """PostgreSQL, the simulator, the instances and HAProxy (see the module docstring)."""

    root: Path
    pg: Cluster
    sim: Child
    proxy: HAProxy
    env: dict[str, str]
    instances: list[Instance] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    links: dict[str, DbLink] = field(default_factory=dict)  # instance id -> its way to PostgreSQL

    @property
    def url(self) -> str:
        """HAProxy's address: what clients use."""
        return self.proxy.url

    @property
    def ws_base(self) -> str:
        return self.proxy.url.replace("http://", "ws://")

    def running(self) -> list[Instance]:
        """Instances up and not paused."""
        return [i for i in self.instances if i.child is not None and i.id not in self.paused]

    def instance(self, instance_id: str) -> Instance:
        return next(i for i in self.instances if i.id == instance_id)

    # --- instances ----------------------------------------------------------------------

    def start(self, instance: Instance) -> None:
        """Start ``instance`` (again); returns once its /healthz answers."""
        link = self.links.get(instance.id) or self.links.setdefault(
            instance.id, DbLink(self.pg.port)
        )
        env = {
            **self.env,
            "TRADERCOIN_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{link.port}/postgres",
            "TRADERCOIN_INSTANCE_ID": instance.id,
            "TRADERCOIN_EGRESS_ADDRESS": instance.egress,
            "TRADERCOIN_ADVERTISE_URL": instance.url,
        }
        instance.starts += 1
        log = f"{instance.id}.{instance.starts}.log"
        instance.child = start_serve(self.root, env, port=instance.port, log_name=log)

    def add_instance(self) -> Instance:
        """Start one more instance and put it behind HAProxy; returns once it is in rotation."""
        instance = Instance(len(self.instances) + 1, free_port())
        self.instances.append(instance)
        self.start(instance)
        self.proxy.reload([(i.id, i.port) for i in self.instances])
        self.wait_in_rotation()
        return instance

    def kill(self, instance: Instance) -> None:
        """SIGKILL: no shutdown code runs, its database sessions and sockets die with it."""
        assert instance.child is not None
        instance.child.kill()
        instance.child = None

    def stop(self, instance: Instance) -> int:
        """SIGTERM and wait (graceful: it hands its users over); returns the exit status."""
        assert instance.child is not None
        status = instance.child.stop()
        instance.child = None
        return status

    def pause(self, instance: Instance) -> None:
        """SIGSTOP: the process freezes with its connections open (a stalled machine)."""
        os.kill(instance.pid, signal.SIGSTOP)
        self.paused.add(instance.id)

    def resume(self, instance: Instance) -> None:
        os.kill(instance.pid, signal.SIGCONT)
        self.paused.discard(instance.id)

    def partition(self, instance: Instance) -> None:
        """Cut ``instance`` off from PostgreSQL (it keeps running and serving HTTP)."""
        self.links[instance.id].partition()

    def heal(self, instance: Instance) -> None:
        self.links[instance.id].heal()

    def rolling_restart(self) -> list[int]:
        """Stop and start each instance in turn, waiting until HAProxy has it back in
        rotation before the next; returns the exit statuses of the stops."""
        statuses = []
        for instance in self.instances:
            statuses.append(self.stop(instance))
            self.start(instance)
            self.wait_in_rotation()
        return statuses

    def wait_in_rotation(self, timeout: float = READY_TIMEOUT) -> None:
        """Until HAProxy counts every running instance UP (its /readyz answered 200)."""
        want = {i.id for i in self.running()}
        _wait(lambda: want <= self.proxy.servers_up(), f"{sorted(want)} UP in haproxy", timeout)

    def restart_postgres(self) -> None:
        """Fast shutdown of PostgreSQL (every connection cut), then start it again."""
        self.pg.restart()

    # --- looking -----------------------------------------------------------------------

    def admin(self, instance: Instance | None, path: str, token: str) -> Any:
        """GET ``/api/admin/<path>`` as the operator, from ``instance`` (None: via HAProxy)."""
        base = self.url if instance is None else instance.url
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.get(f"{base}/api/admin/{path}", headers=headers, timeout=5)
        response.raise_for_status()
        return response.json()

    def sim_admin(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.sim.url}/sim/admin/{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def logs(self) -> str:
        """Every instance's log, for assertions and failure messages."""
        return "\n".join(p.read_text() for p in sorted(self.root.glob("i*.log")))

    def close(self) -> None:
        for instance in self.instances:
            if instance.id in self.paused:
                self.resume(instance)
            if instance.child is not None:
                instance.child.stop(timeout=10)
        self.proxy.stop()
        self.sim.stop()
        for link in self.links.values():
            link.close()


def operator_token(url: str) -> str:
    """Log the deployment's operator in (through ``url``); returns a bearer token."""
    body = {"username": OPERATOR[0], "password": OPERATOR[1]}
    response = httpx.post(f"{url}/api/auth/login", json=body, timeout=10)
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def _cli(env: dict[str, str], *args: str) -> None:
    command = [sys.executable, "-m", "tradercoin.cli", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ProcessFailed(f"tradercoin {args[0]} failed: {result.stderr[-2000:]}")


def _wait(condition: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ProcessFailed(f"not reached after {timeout} s: {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def deployment(
    root: Path, instances: int = 3, *, sim_args: tuple[str, ...] = (), accounts: int = 0, **env: str
) -> Iterator[Deployment]:
    """Bring up PostgreSQL, ``tradercoin sim`` (``accounts`` made at start), the schema, the
    operator, ``instances`` instances and HAProxy; tear it all down on exit. ``env``: extra
    ``TRADERCOIN_*`` settings of every instance."""
    bindir = find_bindir()
    assert bindir is not None, missing_parts()
    with throwaway_cluster(bindir) as pg:
        sim = start_sim(root, *sim_args, accounts=accounts)
        base = {
            **os.environ,
            "TRADERCOIN_DATABASE_URL": pg.url,
            "TRADERCOIN_MASTER_KEY": generate_key(),
            "TRADERCOIN_EXCHANGE": sim.url,
            "TRADERCOIN_EXCHANGE_WS": sim.extra["ws_url"],
            "TRADERCOIN_CLUSTER": "on",
            "TRADERCOIN_REGISTRATIONS_PER_ADDRESS": "100000",  # every client is HAProxy
            "TRADERCOIN_REGISTRATIONS_PER_HOUR": "100000",
            **env,
        }
        proxy = HAProxy(root)
        deployed = Deployment(root, pg, sim, proxy, base)
        try:
            _cli(base, "db", "upgrade")  # once, before several instances start on it
            _cli(
                {**base, "TRADERCOIN_PASSWORD": OPERATOR[1]},
                "users",
                "add",
                OPERATOR[0],
                "--operator",
            )
            deployed.instances = [Instance(n + 1, free_port()) for n in range(instances)]
            with ThreadPoolExecutor(instances) as pool:  # each start waits for its /healthz
                list(pool.map(deployed.start, deployed.instances))
            proxy.reload([(i.id, i.port) for i in deployed.instances])
            deployed.wait_in_rotation()
            yield deployed
        finally:
            deployed.close()
