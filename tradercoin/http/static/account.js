// Balances and positions: read once from GET /api/account, then kept current by
// {"type":"account"} (ACCOUNT_UPDATE) and the mark prices on /ws.

import { api } from "./api.js";
import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

export class AccountView {
  constructor() {
    this.positions = new Map(); // symbol|side -> position
    this.totals = null;
    this.marks = new Map();
    this.reload = null;
  }

  async load() {
    try {
      const answer = await api("GET", "/api/account");
      this.totals = answer.data.totals;
      this.positions.clear();
      for (const p of answer.data.positions) this.positions.set(`${p.symbol}|${p.position_side}`, p);
      $("account-note").textContent = `Read from the exchange at ${fmt.clock(answer.data.time)}.`;
      this.render();
      return answer.data.time;
    } catch (error) {
      $("account-note").textContent = `Account unavailable: ${error.message}`;
      return null;
    }
  }

  leverage(symbol) {
    for (const p of this.positions.values()) if (p.symbol === symbol && p.leverage) return p.leverage;
    return null;
  }

  // ACCOUNT_UPDATE: wallet balances and the positions that changed.
  update(msg) {
    for (const b of msg.balances) {
      if (b.asset === "USDT" && this.totals) this.totals.wallet_balance = b.wallet_balance;
    }
    for (const p of msg.positions) {
      const key = `${p.symbol}|${p.position_side}`;
      const before = this.positions.get(key) || {};
      if (Number(p.amount) === 0) this.positions.delete(key);
      else this.positions.set(key, { ...before, ...dropNulls(p) });
    }
    for (const [symbol, mark] of this.marks) this.setMark(symbol, mark);
    $("account-note").textContent = `Updated by the exchange at ${fmt.clock(msg.time)}.`;
    this.render();
    this.reloadSoon();
  }

  // ACCOUNT_UPDATE carries no available balance, leverage or liquidation price: read the
  // whole account once things settle (at most one read per 3 s).
  reloadSoon() {
    if (this.reload) return;
    this.reload = setTimeout(() => { this.reload = null; this.load(); }, 3000);
  }

  setMark(symbol, mark) {
    this.marks.set(symbol, mark);
    let changed = false;
    for (const p of this.positions.values()) {
      if (p.symbol !== symbol) continue;
      p.mark_price = mark;
      if (p.entry_price) p.unrealized_pnl = String(Number(p.amount) * (Number(mark) - Number(p.entry_price)));
      changed = true;
    }
    if (changed) this.render();
  }

  render() {
    const t = this.totals;
    let pnl = t ? Number(t.unrealized_pnl) : null;
    if (t && this.positions.size) pnl = [...this.positions.values()].reduce((s, p) => s + Number(p.unrealized_pnl || 0), 0);
    $("bal-wallet").textContent = t ? `${fmt.usdt(t.wallet_balance)} USDT` : "—";
    $("bal-available").textContent = t ? `${fmt.usdt(t.available_balance)} USDT` : "—";
    $("bal-pnl").textContent = t ? `${fmt.signedUsdt(pnl)} USDT` : "—";
    const rows = [...this.positions.values()].map((p) => positionRow(p));
    $("positions-body").replaceChildren(...rows);
    $("positions-empty").hidden = rows.length > 0;
  }
}

function dropNulls(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== null));
}

function positionRow(p) {
  const tr = document.createElement("tr");
  tr.dataset.symbol = p.symbol;
  const long = Number(p.amount) > 0;
  const cells = [
    [p.symbol, "Symbol"],
    [`${long ? "Long" : "Short"} ${fmt.qty(p.symbol, Math.abs(Number(p.amount)))}`, "Size"],
    [fmt.price(p.symbol, p.entry_price), "Entry"],
    [fmt.price(p.symbol, p.mark_price), "Mark"],
    [fmt.signedUsdt(p.unrealized_pnl), "Unrealized PnL"],
    [p.leverage ? `${p.leverage}x` : "—", "Leverage"],
    [Number(p.liquidation_price) > 0 ? fmt.price(p.symbol, p.liquidation_price) : "—", "Liquidation"],
  ];
  tr.replaceChildren(...cells.map(([text, label], i) => {
    const td = document.createElement("td");
    td.textContent = text;
    td.dataset.label = label;
    if (i > 0) td.className = "num";
    if (i === 1) td.classList.add(long ? "side-buy" : "side-sell");
    return td;
  }));
  return tr;
}
