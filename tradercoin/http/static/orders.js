// The orders table: one page from GET /api/orders, live updates applied in place.

const OPEN = new Set(["pending", "new", "partially_filled"]);
const LABELS = {
  pending: "Pending", new: "New", partially_filled: "Partially filled", filled: "Filled",
  canceled: "Canceled", expired: "Expired", rejected: "Rejected",
};

const COLUMNS = [
  "Order", "Time", "Symbol", "Side", "Type", "Quantity", "Price", "Filled", "Avg price", "Status", "",
];

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "—" : String(text);
  if (className) td.className = className;
  return td;
}

function time(ms) {
  const d = new Date(ms);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function matches(order, filters) {
  if (filters.status && order.status !== filters.status) return false;
  if (filters.symbol && order.symbol !== filters.symbol) return false;
  if (filters.q) {
    const q = filters.q.toLowerCase();
    const hay = [order.symbol, order.client_order_id, order.note || "", String(order.exchange_order_id || "")];
    if (!hay.some((h) => h.toLowerCase().includes(q))) return false;
  }
  return true;
}

export class OrdersTable {
  constructor(body, { onCancel }) {
    this.body = body;
    this.onCancel = onCancel;
    this.rows = new Map(); // order id -> tr
    this.orders = new Map(); // order id -> the order shown
  }

  render(orders) {
    this.rows.clear();
    this.orders.clear();
    this.body.replaceChildren(...orders.map((o) => this.row(o)));
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
    const status = cell(LABELS[order.status] || order.status, `status status-${order.status}`);
    status.dataset.status = order.status;
    const actions = document.createElement("td");
    if (OPEN.has(order.status) && order.status !== "pending") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = "Cancel";
      button.setAttribute("aria-label", `Cancel order ${order.id}`);
      button.addEventListener("click", () => this.onCancel(order.id, button));
      actions.append(button);
    }
    const cells = [
      cell(order.id, "num"), cell(time(order.created_at)), cell(order.symbol),
      cell(order.side, `side-${order.side.toLowerCase()}`), cell(order.type),
      cell(order.quantity, "num"), cell(order.price, "num"), cell(order.filled_quantity, "num"),
      cell(order.avg_price, "num"), status, actions,
    ];
    cells.forEach((td, i) => { td.dataset.label = COLUMNS[i]; });
    tr.replaceChildren(...cells);
    tr.title = order.note || "";
  }

  // Apply one live order; returns "updated", "added", "stale" or "ignored".
  apply(order, { filters, page, pageSize }) {
    const shown = this.orders.get(order.id);
    if (shown && shown.updated_at > order.updated_at) return "stale";
    const tr = this.rows.get(order.id);
    if (tr) {
      this.fill(tr, order);
      this.flash(tr);
      return "updated";
    }
    if (page !== 1 || !matches(order, filters)) return "ignored";
    const fresh = this.row(order);
    this.body.prepend(fresh);
    while (this.body.children.length > pageSize) {
      const last = this.body.lastElementChild;
      this.rows.delete(Number(last.dataset.orderId));
      this.orders.delete(Number(last.dataset.orderId));
      last.remove();
    }
    this.flash(fresh);
    return "added";
  }

  flash(tr) {
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
    tr.addEventListener("animationend", () => tr.classList.remove("flash"), { once: true });
  }
}
