"""Fill-to-screen latency in a real browser: from the exchange's fill to the row's change.

A real ``tradercoin serve`` (SQLite, embedded simulator) and Debian's Chromium (Playwright,
headless). One user with the page open on "Order history"; N resting LIMIT orders placed
through the API; then, one at a time, each is filled at the exchange
(``POST /sim/admin/fill``) and the page's own MutationObserver notes the wall-clock time at
which that order's row turns ``filled``. Latency = that time minus the fill's time in the
exchange's record (the simulator's trade ``time``, same machine clock). Prints p50, p99 and
max over N fills.

    .venv/bin/python -m bench.page_latency --fills 100
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from tests.page.harness import chromium, register, row, running_desk

OBSERVER = """
window.__filledAt = {};
new MutationObserver((records) => {
  const now = performance.timeOrigin + performance.now();
  for (const r of records) {
    const nodes = r.type === "attributes" ? [r.target] : [...r.addedNodes];
    for (const n of nodes) {
      if (n.nodeType === 1 && n.dataset && n.dataset.status === "filled" && n.dataset.orderId
          && !(n.dataset.orderId in window.__filledAt)) {
        window.__filledAt[n.dataset.orderId] = now;
      }
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true,
                       attributeFilter: ["data-status"] });
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(fills: int) -> list[float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_desk(Path(tmp)) as desk,
        chromium() as browser,
    ):
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.add_init_script(OBSERVER)
        register(page, desk.url, "bench")
        api = desk.api("bench")
        keys = desk.admin("POST", "accounts")
        api.put("/api/credentials", json=keys).raise_for_status()
        page.get_by_role("tab", name="Order history").click()
        page.select_option("#page-size", "100")
        mark = Decimal(api.get("/api/prices?symbols=BTCUSDT").json()["data"]["BTCUSDT"])
        orders = []
        for i in range(fills):
            price = (mark * Decimal("0.9") - i).quantize(Decimal("0.1"))
            body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010"}
            answer = api.post("/api/orders", json={**body, "price": str(price)})
            answer.raise_for_status()
            orders.append(answer.json()["data"])
        for order in orders:
            row(page, order["id"], "new")
        latencies = []
        for order in orders:
            desk.fill("BTCUSDT", order["exchange_order_id"])
            row(page, order["id"], "filled")
            seen = page.evaluate("(id) => window.__filledAt[id]", str(order["id"]))
            [trade] = desk.admin(
                "GET", "trades", api_key=keys["api_key"], orderId=order["exchange_order_id"]
            )
            latencies.append(float(seen) - trade["time"])
            time.sleep(0.05)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fills", type=int, default=100)
    args = parser.parse_args()
    latencies = measure(args.fills)
    print(f"python {platform.python_version()} ({sys.executable}), chromium /usr/bin/chromium")
    print(f"fills: {len(latencies)}")
    print(
        f"fill-to-screen ms: p50 {percentile(latencies, 50):.1f}, "
        f"p99 {percentile(latencies, 99):.1f}, max {max(latencies):.1f}, "
        f"mean {statistics.fmean(latencies):.1f}, min {min(latencies):.1f}"
    )


if __name__ == "__main__":
    main()
