"""Real processes for tests and benchmarks: ``tradercoin serve`` and ``tradercoin sim`` on free
loopback ports, each with its log in a file (shared by tests/http and tests/reliability)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tradercoin.store import generate_key

START_TIMEOUT = 30.0


class ProcessFailed(RuntimeError):
    """A child process exited or did not become ready; the message holds its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Wait until ``url/healthz`` answers 200; raises ProcessFailed if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProcessFailed(f"process exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ProcessFailed(f"not healthy after {timeout} s: {log.read_text()[-2000:]}")


@dataclass(eq=False)
class Child:
    """A ``tradercoin`` subprocess and its combined log."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.kill()
        self.process.wait()


def serve_env(database_url: str, master_key: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``tradercoin serve`` child (its own master key unless given)."""
    return {
        **os.environ,
        "TRADERCOIN_DATABASE_URL": database_url,
        "TRADERCOIN_MASTER_KEY": master_key or generate_key(),
        **extra,
    }


def start_serve(
    cwd: Path,
    env: dict[str, str],
    *,
    port: int | None = None,
    log_name: str = "serve.log",
    timeout: float = START_TIMEOUT,
) -> Child:
    """``tradercoin serve`` on ``port`` (a free one by default); returns once /healthz is 200
    (ProcessFailed after ``timeout`` seconds).

    A free port is free only when :func:`free_port` looks: another program may take it
    before ``serve`` binds it. Then (``serve`` says "Address already in use") another free
    port is tried, twice at most; a port the caller chose is never changed."""
    for attempt in range(3):
        try:
            return _start_serve(cwd, env, port or free_port(), log_name, timeout)
        except ProcessFailed as failed:
            if port is not None or attempt == 2 or "Address already in use" not in str(failed):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start_serve(cwd: Path, env: dict[str, str], port: int, log_name: str, timeout: float) -> Child:
    log_path = cwd / log_name
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradercoin.cli", "serve", "--port", str(port)],
            env={**env, "TRADERCOIN_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Child(process, log_path, url)


_SERVING = re.compile(r"serving on (\S+) \(REST\) and (\S+) \(user stream\)")


def start_sim(cwd: Path, *args: str, accounts: int = 0, log_name: str = "sim.log") -> Child:
    """``tradercoin sim --port 0`` (plus ``args``); returns once it serves, with
    ``extra["accounts"]`` (``{"api_key", "api_secret"}`` each) and ``extra["ws_url"]``."""
    log_path = cwd / log_name
    out_path = cwd / (log_name + ".out")
    with log_path.open("ab") as log, out_path.open("wb") as out:
        command = [sys.executable, "-m", "tradercoin.cli", "sim", "--port", "0"]
        process = subprocess.Popen(
            [*command, "--accounts", str(accounts), *args], stdout=out, stderr=log, cwd=cwd
        )
    deadline = time.monotonic() + START_TIMEOUT
    while (found := _SERVING.search(log_path.read_text())) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise ProcessFailed(f"tradercoin sim did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    lines = out_path.read_text().splitlines()
    child = Child(process, log_path, found.group(1))
    child.extra = {"accounts": [json.loads(line) for line in lines], "ws_url": found.group(2)}
    return child
