"""A real ``tradercoin serve`` (SQLite, its embedded simulator on a known port) and Debian's
Chromium driven by Playwright: what the page tests, the screenshot script and the latency
benchmark share.

The simulator's control routes (``/sim/admin/...``) are the exchange side: fills, prices and
the exchange's own record of orders and accounts (the tests' oracle).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.procs import Child, free_port, serve_env, start_serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse"
LIVE_MS = 30_000


@dataclass(eq=False)
class Desk:
    """The service under test and its exchange."""

    child: Child
    sim: str  # the embedded simulator's REST base
    tmp: Path

    @property
    def url(self) -> str:
        return self.child.url

    def api(self, username: str, password: str = PASSWORD) -> httpx.Client:
        """An API client logged in as ``username`` (Bearer token)."""
        answer = httpx.post(
            f"{self.url}/api/auth/login", json={"username": username, "password": password}
        )
        answer.raise_for_status()
        token = answer.json()["token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"})

    def admin(self, method: str, path: str, **body: Any) -> Any:
        """A call to the simulator's control routes (the exchange side)."""
        if method == "GET":
            answer = httpx.get(f"{self.sim}/sim/admin/{path}", params=body)
        else:
            answer = httpx.request(method, f"{self.sim}/sim/admin/{path}", json=body)
        answer.raise_for_status()
        return answer.json()

    def fill(self, symbol: str, exchange_order_id: int) -> None:
        self.admin("POST", "fill", symbol=symbol, orderId=exchange_order_id)

    def operator(self, name: str = "root", password: str = "operator pass") -> None:
        """Create an operator account with the CLI, on the service's database."""
        import subprocess
        import sys

        env = serve_env(self.database_url)
        command = [sys.executable, "-m", "tradercoin.cli", "users", "add", name, "--operator"]
        subprocess.run([*command, "--password", password], env=env, check=True, cwd=self.tmp)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.tmp}/serve.db"


@contextmanager
def running_desk(tmp: Path) -> Iterator[Desk]:
    """``tradercoin serve`` with its simulator on a free known port; stopped on exit."""
    sim_port = free_port()
    env = serve_env(f"sqlite:///{tmp}/serve.db", TRADERCOIN_SIM_PORT=str(sim_port))
    child = start_serve(tmp, env)
    try:
        yield Desk(child, f"http://127.0.0.1:{sim_port}", tmp)
    finally:
        status = child.stop()
        assert status == 0, child.log.read_text()[-2000:]


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def register(page: Any, url: str, username: str, password: str = PASSWORD) -> None:
    """Register on the page and wait until it is live with a mark price shown."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password (8 characters or more)").fill(password)
    page.get_by_role("button", name="Register").click()
    page.wait_for_selector('#conn[data-state="live"]', timeout=LIVE_MS)
    # expect(), not wait_for_function: the page's CSP forbids evaluating strings
    expect(page.locator("#mark-price")).not_to_have_text("—", timeout=LIVE_MS)


def log_in(page: Any, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password (8 characters or more)").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector('#conn[data-state="live"]', timeout=LIVE_MS)


def row(page: Any, order_id: int, status: str) -> Any:
    """Wait for the row of ``order_id`` in ``status``; returns it."""
    selector = f'#orders-body tr[data-order-id="{order_id}"][data-status="{status}"]'
    return page.wait_for_selector(selector, timeout=LIVE_MS)
