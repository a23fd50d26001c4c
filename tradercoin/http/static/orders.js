// The orders table: open orders or history, live updates applied in place, sortable
// columns, a row's fills on demand.

import * as fmt from "./format.js";

export const OPEN = new Set(["pending", "new", "partially_filled"]);
export const LABELS = {
  pending: "Sending", new: "Open", partially_filled: "Partially filled", filled: "Filled",
  canceled: "Canceled", expired: "Expired", rejected: "Rejected",
};

// key, header, cell text, sort value
const COLUMNS = [
  ["created_at", "Time", (o) => fmt.time(o.created_at), (o) => o.created_at],
  ["symbol", "Symbol", (o) => o.symbol, (o) => o.symbol],
  ["side", "Side", (o) => (o.side === "BUY" ? "Buy" : "Sell"), (o) => o.side],
  ["type", "Type", (o) => (o.type === "LIMIT" ? `Limit ${o.time_in_force || ""}`.trim() : "Market"), (o) => o.type],
  ["quantity", "Quantity", (o) => fmt.qty(o.symbol, o.quantity), (o) => Number(o.quantity)],
  ["price", "Price", (o) => (o.price ? fmt.price(o.symbol, o.price) : "Market"), (o) => Number(o.price || 0)],
  ["filled_quantity", "Filled", (o) => fmt.qty(o.symbol, o.filled_quantity), (o) => Number(o.filled_quantity)],
  ["avg_price", "Avg price", (o) => fmt.price(o.symbol, o.avg_price), (o) => Number(o.avg_price || 0)],
  ["status", "Status", (o) => LABELS[o.status] || o.status, (o) => o.status],
  ["updated_at", "Updated", (o) => fmt.time(o.updated_at), (o) => o.updated_at],
  ["exchange_order_id", "Exchange id", (o) => o.exchange_order_id ?? "—", (o) => o.exchange_order_id || 0],
  ["client_order_id", "Client id", (o) => o.client_order_id, (o) => o.client_order_id],
  ["reduce_only", "Reduce-only", (o) => (o.reduce_only ? "Yes" : "No"), (o) => (o.reduce_only ? 1 : 0)],
];
const NUMERIC = new Set(["quantity", "price", "filled_quantity", "avg_price", "exchange_order_id"]);

export function matches(order, filters, view) {
  if (view === "open" && !OPEN.has(order.status)) return false;
  if (filters.status && order.status !== filters.status) return false;
  if (filters.symbol && order.symbol !== filters.symbol) return false;
  if (filters.side && order.side !== filters.side) return false;
  if (filters.from && order.created_at < filters.from) return false;
  if (filters.to && order.created_at >= filters.to) return false;
  if (filters.q) {
    const q = filters.q.toLowerCase();
    const hay = [order.symbol, order.client_order_id, order.note || "", String(order.exchange_order_id || ""), String(order.id)];
    if (!hay.some((h) => h.toLowerCase().includes(q))) return false;
  }
  return true;
}

export class OrdersTable {
  constructor(body, head, { onCancel, onFills }) {
    this.body = body;
    this.head = head;
    this.onCancel = onCancel;
    this.onFills = onFills;
    this.orders = new Map(); // order id -> the order shown
    this.rows = new Map(); // order id -> tr
    this.sort = { key: "created_at", dir: -1 };
    this.renderHead();
  }

  renderHead() {
    const cells = COLUMNS.map(([key, label]) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.setAttribute("aria-sort", this.sort.key === key ? (this.sort.dir > 0 ? "ascending" : "descending") : "none");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = label;
      button.addEventListener("click", () => this.sortBy(key));
      th.append(button);
      return th;
    });
    const actions = document.createElement("th");
    actions.scope = "col";
    actions.innerHTML = '<span class="visually-hidden">Actions</span>';
    this.head.replaceChildren(...cells, actions);
  }

  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : (key === "created_at" || key === "updated_at" ? -1 : 1) };
    this.renderHead();
    this.reorder();
  }

  compare(a, b) {
    const col = COLUMNS.find(([key]) => key === this.sort.key);
    const va = col[3](a);
    const vb = col[3](b);
    const order = va < vb ? -1 : va > vb ? 1 : b.id - a.id;
    return order * this.sort.dir;
  }

  render(orders) {
    this.orders.clear();
    this.rows.clear();
    for (const o of orders) this.orders.set(o.id, o);
    this.reorder();
  }

  reorder() {
    const sorted = [...this.orders.values()].sort((a, b) => this.compare(a, b));
    this.body.replaceChildren(...sorted.map((o) => this.rows.get(o.id) || this.row(o)));
  }

  row(order) {
    const tr = document.createElement("tr");
    tr.dataset.orderId = order.id;
    this.fill(tr, order);
    this.rows.set(order.id, tr);
    return tr;
  }

  fill(tr, order) {
    this.orders.set(order.id, order);
    tr.dataset.status = order.status;
    const cells = COLUMNS.map(([key, label, text]) => {
      const td = document.createElement("td");
      td.textContent = text(order);
      td.dataset.label = label;
      if (NUMERIC.has(key)) td.className = "num";
      if (key === "side") td.className = `side-${order.side.toLowerCase()}`;
      if (key === "status") {
        td.className = `status status-${order.status}`;
        td.dataset.status = order.status;
        if (order.note) td.title = order.note;
      }
      return td;
    });
    tr.replaceChildren(...cells, this.actions(order));
    if (order.note && order.status === "rejected") {
      const why = document.createElement("span");
      why.className = "why";
      why.textContent = order.note;
      cells[8].append(why);
    }
  }

  actions(order) {
    const td = document.createElement("td");
    td.className = "actions";
    if (Number(order.filled_quantity) > 0) {
      td.append(this.button("Fills", `Show the fills of order ${order.id}`, (b) => this.onFills(order, b)));
    }
    if (OPEN.has(order.status) && order.status !== "pending") {
      td.append(this.button("Cancel", `Cancel order ${order.id}`, (b) => this.onCancel(order.id, b)));
    }
    return td;
  }

  button(text, label, handler) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small secondary";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", () => handler(b));
    return b;
  }

  // Apply one live order; returns "updated", "added", "removed", "stale" or "ignored".
  apply(order, filters, view) {
    const shown = this.orders.get(order.id);
    if (shown && shown.updated_at > order.updated_at) return "stale";
    const tr = this.rows.get(order.id);
    if (tr && !matches(order, filters, view)) {
      if (view === "open") {
        this.remove(order.id);
        return "removed";
      }
    }
    if (tr) {
      this.fill(tr, order);
      this.flash(tr);
      return "updated";
    }
    if (!matches(order, filters, view)) return "ignored";
    const fresh = this.row(order);
    this.insertSorted(fresh, order);
    this.flash(fresh);
    return "added";
  }

  // Put a new row where the current sort wants it (no re-render of the others).
  insertSorted(tr, order) {
    for (const other of this.body.querySelectorAll("tr[data-order-id]")) {
      const shown = this.orders.get(Number(other.dataset.orderId));
      if (other !== tr && shown && this.compare(order, shown) < 0) {
        this.body.insertBefore(tr, other);
        return;
      }
    }
    this.body.append(tr);
  }

  remove(id) {
    const tr = this.rows.get(id);
    if (tr) {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("fills-row")) next.remove();
      tr.remove();
    }
    this.rows.delete(id);
    this.orders.delete(id);
  }

  trimTo(size) {
    const rows = [...this.body.querySelectorAll("tr[data-order-id]")];
    for (const tr of rows.slice(size)) {
      this.remove(Number(tr.dataset.orderId));
      tr.remove();
    }
  }

  flash(tr) {
    tr.classList.remove("flash"); // restarted on the next frame: no forced layout here
    requestAnimationFrame(() => tr.classList.add("flash"));
    tr.addEventListener("animationend", () => tr.classList.remove("flash"), { once: true });
  }

  // The fills of `order` in a row under it (a second press closes it).
  showFills(order, fills) {
    const tr = this.rows.get(order.id);
    if (!tr) return;
    const open = tr.nextElementSibling;
    if (open && open.classList.contains("fills-row")) {
      open.remove();
      return;
    }
    const row = document.getElementById("fills-template").content.firstElementChild.cloneNode(true);
    row.querySelector("caption").textContent = `Fills of order ${order.id} (${order.symbol})`;
    row.querySelector("tbody").replaceChildren(...fills.map((f) => fillRow(order.symbol, f)));
    if (!fills.length) row.querySelector("caption").textContent += ": none recorded yet";
    tr.after(row);
  }

  csv() {
    const header = [...COLUMNS.map(([key]) => key), "note"];
    const lines = [header.join(",")];
    for (const tr of this.body.querySelectorAll("tr[data-order-id]")) {
      const o = this.orders.get(Number(tr.dataset.orderId));
      lines.push(header.map((k) => csvCell(k === "created_at" || k === "updated_at" ? new Date(o[k]).toISOString() : o[k])).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
}

export function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function fillRow(symbol, f) {
  const tr = document.createElement("tr");
  const cells = [
    fmt.time(f.time), fmt.price(symbol, f.price), fmt.qty(symbol, f.quantity),
    `${f.commission} ${f.commission_asset}`, fmt.signedUsdt(f.realized_pnl), f.maker ? "Maker" : "Taker",
  ];
  tr.replaceChildren(...cells.map((text) => {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }));
  return tr;
}
