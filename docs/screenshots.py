"""Screenshots of the page's main views, made from a real ``tradercoin serve`` in Debian's
Chromium: ``docs/img/trader-desktop.png``, ``trader-phone.png`` and ``operator.png``.

    .venv/bin/python -m docs.screenshots
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from tests.page.harness import chromium, log_in, register, row, running_desk

OUT = Path(__file__).with_name("img")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_desk(Path(tmp)) as desk,
        chromium() as browser,
    ):
        desk.operator()
        desktop = browser.new_context(viewport={"width": 1366, "height": 900})
        page = desktop.new_page()
        register(page, desk.url, "trader")
        api = desk.api("trader")
        mark = Decimal(api.get("/api/prices?symbols=BTCUSDT").json()["data"]["BTCUSDT"])
        placed = []
        for i, side in enumerate(("BUY", "BUY", "SELL")):
            price = mark * (Decimal("0.97") if side == "BUY" else Decimal("1.03")) - i
            body = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "quantity": "0.020"}
            answer = api.post(
                "/api/orders", json={**body, "price": str(price.quantize(Decimal("0.1")))}
            )
            placed.append(answer.json()["data"])
        for order in placed:
            row(page, order["id"], "new")
        desk.fill("BTCUSDT", placed[0]["exchange_order_id"])
        page.wait_for_selector("#toasts .toast-filled")
        page.wait_for_selector('#positions-body tr[data-symbol="BTCUSDT"]')
        page.fill("#order-quantity", "0.050")
        page.screenshot(path=str(OUT / "trader-desktop.png"), full_page=True)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.add_cookies(desktop.cookies())
        small = phone.new_page()
        small.goto(desk.url)
        small.wait_for_selector(f'#orders-body tr[data-order-id="{placed[1]["id"]}"]')
        small.screenshot(path=str(OUT / "trader-phone.png"), full_page=True)
        ops = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        log_in(ops, desk.url, "root", "operator pass")
        ops.wait_for_selector("#actors-body tr")
        ops.wait_for_timeout(11_000)  # a few refreshes: the budget chart has points
        ops.locator("#admin").screenshot(path=str(OUT / "operator.png"))
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} in {OUT}")


if __name__ == "__main__":
    main()
