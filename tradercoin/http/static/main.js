// The trader's page: wiring of auth, keys, the order form, the account, the live tables,
// notices and the operator view.

import { api, ApiError, clearErrors, fieldError } from "./api.js";
import { LiveLink } from "./live.js";
import { OrdersTable, OPEN, matches } from "./orders.js";
import { Admin } from "./admin.js";
import { TradeForm } from "./trade.js";
import { LeverageForm } from "./leverage.js";
import { AccountView } from "./account.js";
import { KeysPanel } from "./keys.js";
import { Toasts } from "./toasts.js";
import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  view: "open", // "open" | "history"
  page: 1,
  pageSize: 20,
  total: 0,
  filters: { status: "", symbol: "", side: "", from: 0, to: 0, q: "" },
  fetching: null,
  inFlight: [], // updates that arrived while a fetch was out: re-applied on its answer
  confirmed: 0, // exchange time of the newest thing it told us
  conn: "idle",
};

const CONN_TEXT = {
  idle: "not connected", connecting: "connecting…", live: "live",
  reconnecting: "reconnecting…", offline: "offline",
};
const CONN_HELP = {
  live: "Changes to your orders appear here the moment the exchange reports them.",
  offline: "Your orders are still watched by the server; changes are kept and arrive when this page reconnects.",
  reconnecting: "Reconnecting; nothing is lost meanwhile.",
  connecting: "", idle: "",
};

function notice(text) {
  const p = $("notice");
  p.textContent = text || "";
  p.hidden = !text;
}

function setConn(s) {
  state.conn = s;
  const p = $("conn");
  p.dataset.state = s;
  p.querySelector(".conn-text").textContent = CONN_TEXT[s] || s;
  showHelp();
}

function confirmed(ms) {
  if (ms && ms > state.confirmed) state.confirmed = ms;
  showHelp();
}

function showHelp() {
  const last = state.confirmed ? ` Last confirmed by the exchange at ${fmt.clock(state.confirmed)}.` : "";
  $("conn-help").textContent = (CONN_HELP[state.conn] || "") + last;
}

const toasts = new Toasts($("toasts"));
const account = new AccountView();
const table = new OrdersTable($("orders-body"), $("orders-head"), { onCancel: cancelOrder, onFills: showFills });
const admin = new Admin({ notice });
const trade = new TradeForm({
  onPlaced: (o) => applyOrder(o),
  onSymbol: (symbol) => {
    leverage.show(symbol);
    live.subscribe([...new Set([symbol, ...positionsSymbols()])]);
  },
  leverageOf: (symbol) => account.leverage(symbol),
});
const leverage = new LeverageForm({
  symbolOf: () => trade.symbol,
  onChanged: () => account.load().then(() => trade.preview()),
});
const keys = new KeysPanel({ onChanged: () => { account.load(); loadOrders(); } });
const live = new LiveLink({
  onState: setConn,
  onHello: (seq, first) => { if (first) loadOrders(); },
  onUpdate: (msg) => {
    if (state.fetching) state.inFlight.push(msg.data);
    applyOrder(msg.data);
    toasts.order(msg.data);
    confirmed(msg.data.exchange_update_time);
  },
  onResync: () => loadOrders(),
  onAlert: (msg) => notice(msg.message || "The server sent an alert."),
  onPrice: (msg) => {
    trade.setMark(msg.symbol, msg.mark_price);
    account.setMark(msg.symbol, msg.mark_price);
    confirmed(msg.time);
  },
  onAccount: (msg) => { account.update(msg); confirmed(msg.time); },
});

function positionsSymbols() {
  return [...account.positions.values()].map((p) => p.symbol);
}

function applyOrder(order) {
  const result = table.apply(order, state.filters, state.view);
  if (result === "added") state.total += 1;
  if (result === "removed") state.total = Math.max(0, state.total - 1);
  if (state.view === "history") table.trimTo(state.pageSize);
  $("orders-empty").hidden = table.orders.size > 0;
  pageInfo();
}

// ------------------------------------------------------------------ auth

function showLoggedIn(user) {
  state.user = user;
  $("auth").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = user.username;
  $("who-role").textContent = user.role;
  $("desk").hidden = false;
  $("orders").hidden = false;
  $("admin").hidden = user.role !== "operator";
  loadSymbols().then(() => account.load()).then((ms) => { confirmed(ms); trade.preview(); });
  live.start();
  if (user.role === "operator") admin.start();
}

function showLoggedOut() {
  state.user = null;
  live.stop();
  admin.stop();
  $("auth").hidden = false;
  $("who").hidden = true;
  for (const id of ["desk", "orders", "admin", "settings"]) $(id).hidden = true;
  $("auth-username").focus();
}

async function submitAuth(event) {
  event.preventDefault();
  const action = event.submitter && event.submitter.value === "register" ? "register" : "login";
  const form = $("auth-form");
  clearErrors(form);
  const body = { username: form.username.value.trim(), password: form.password.value };
  $("auth-error").textContent = "";
  if (!body.username) return fieldError("auth", "username", "Enter a username.");
  if (action === "register" && body.password.length < 8) {
    return fieldError("auth", "password", "Password needs at least 8 characters.");
  }
  try {
    const answer = await api("POST", `/api/auth/${action}`, body);
    form.password.value = "";
    showLoggedIn(answer.data);
  } catch (error) {
    if (error.field) fieldError("auth", error.field, error.message);
    $("auth-error").textContent = error.message;
  }
}

async function logout() {
  try { await api("POST", "/api/auth/logout"); } catch (error) { /* cookie cleared anyway */ }
  showLoggedOut();
}

// ------------------------------------------------------------------ orders

async function loadSymbols() {
  try {
    const answer = await api("GET", "/api/symbols");
    fmt.setSymbols(answer.data);
    const names = answer.data.map((s) => s.symbol);
    $("filter-symbol").replaceChildren(new Option("All", ""), ...names.map((n) => new Option(n, n)));
    trade.setSymbols(answer.data);
    const prices = await api("GET", `/api/prices?symbols=${names.slice(0, 20).join(",")}`);
    for (const [symbol, mark] of Object.entries(prices.data)) if (mark) trade.setMark(symbol, mark);
  } catch (error) {
    notice(`Symbols unavailable: ${error.message}`);
  }
}

function baseParams() {
  const params = new URLSearchParams();
  if (state.filters.symbol) params.set("symbol", state.filters.symbol);
  if (state.filters.q) params.set("q", state.filters.q);
  // side and dates are filtered by the server's query (not among the loaded rows)
  if (state.filters.side) params.set("side", state.filters.side);
  if (state.filters.from) params.set("from", String(state.filters.from));
  if (state.filters.to) params.set("to", String(state.filters.to));
  return params;
}

async function fetchOpen() {
  const lists = await Promise.all([...OPEN].map((status) => {
    const params = baseParams();
    params.set("status", status);
    params.set("page_size", "100");
    return api("GET", `/api/orders?${params}`);
  }));
  const data = lists.flatMap((l) => l.data);
  return { data, total: data.length };
}

async function fetchHistory() {
  const params = baseParams();
  params.set("page", state.page);
  params.set("page_size", state.pageSize);
  if (state.filters.status) params.set("status", state.filters.status);
  return api("GET", `/api/orders?${params}`);
}

async function loadOrders() {
  const ticket = Symbol("fetch");
  state.fetching = ticket;
  state.inFlight = [];
  try {
    const answer = state.view === "open" ? await fetchOpen() : await fetchHistory();
    if (state.fetching !== ticket) return; // a newer query won
    state.fetching = null;
    const shown = answer.data.filter((o) => matches(o, state.filters, state.view));
    state.total = answer.total - (answer.data.length - shown.length);
    table.render(shown);
    for (const order of state.inFlight) applyOrder(order); // newer than the read? they win
    state.inFlight = [];
    $("orders-empty").hidden = table.orders.size > 0;
    pageInfo();
  } catch (error) {
    if (state.fetching === ticket) state.fetching = null;
    if (error.status === 401) return showLoggedOut();
    notice(`Orders unavailable: ${error.message}`);
  }
}

function pages() {
  return Math.max(1, Math.ceil(state.total / state.pageSize));
}

function pageInfo() {
  $("page-info").textContent = `Page ${state.page} of ${pages()} · ${state.total} orders`;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages();
}

async function cancelOrder(orderId, button) {
  button.disabled = true;
  try {
    const answer = await api("DELETE", `/api/orders/${orderId}`);
    applyOrder(answer.data);
  } catch (error) {
    notice(`Not canceled: ${error.message}`);
    button.disabled = false;
  }
}

async function cancelAll() {
  const symbols = state.filters.symbol ? [state.filters.symbol]
    : [...new Set([...table.orders.values()].filter((o) => OPEN.has(o.status)).map((o) => o.symbol))];
  if (!symbols.length) return notice("There are no open orders to cancel.");
  $("cancel-all").disabled = true;
  try {
    let canceled = 0;
    for (const symbol of symbols) {
      const answer = await api("DELETE", `/api/orders?symbol=${encodeURIComponent(symbol)}`);
      canceled += answer.data.canceled;
    }
    notice(`${canceled} open order${canceled === 1 ? "" : "s"} canceled (${symbols.join(", ")}).`);
  } catch (error) {
    notice(`Not all canceled: ${error.message}`);
  } finally {
    $("cancel-all").disabled = false;
  }
}

async function showFills(order, button) {
  button.disabled = true;
  try {
    const answer = await api("GET", `/api/orders/${order.id}/fills`);
    table.showFills(order, answer.data);
  } catch (error) {
    notice(`Fills unavailable: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function exportCsv() {
  const rows = [];
  const params = baseParams();
  if (state.filters.status) params.set("status", state.filters.status);
  params.set("page_size", "100");
  for (let page = 1; page <= 50; page += 1) { // at most 5,000 orders
    params.set("page", page);
    const answer = await api("GET", `/api/orders?${params}`);
    rows.push(...answer.data.filter((o) => matches(o, state.filters, "history")));
    if (page * 100 >= answer.total) break;
  }
  const scratch = new OrdersTable(document.createElement("tbody"), document.createElement("tr"), {});
  scratch.render(rows);
  const blob = new Blob([scratch.csv()], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `tradercoin-orders-${new Date().toISOString().slice(0, 10)}.csv`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// ------------------------------------------------------------------ views and filters

function selectView(view) {
  state.view = view;
  state.page = 1;
  for (const [id, v] of [["tab-open", "open"], ["tab-history", "history"]]) {
    const tab = $(id);
    tab.setAttribute("aria-selected", String(v === view));
    tab.tabIndex = v === view ? 0 : -1;
  }
  $("orders-panel").setAttribute("aria-labelledby", view === "open" ? "tab-open" : "tab-history");
  $("orders").dataset.view = view;
  loadOrders();
}

function dayStart(value, plusDays = 0) {
  if (!value) return 0;
  const d = new Date(`${value}T00:00:00`);
  d.setDate(d.getDate() + plusDays);
  return d.getTime();
}

let searchTimer = null;

function filtersChanged() {
  const f = $("filters");
  state.filters = {
    status: state.view === "history" ? f.status.value : "", symbol: f.symbol.value,
    side: f.side.value, from: dayStart(f.from.value), to: dayStart(f.to.value, 1),
    q: f.q.value.trim(),
  };
  state.page = 1;
  loadOrders();
}

function tabKeys(event) {
  if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
  const next = state.view === "open" ? "history" : "open";
  selectView(next);
  $(next === "open" ? "tab-open" : "tab-history").focus();
}

function wire() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("logout").addEventListener("click", logout);
  $("tab-open").addEventListener("click", () => selectView("open"));
  $("tab-history").addEventListener("click", () => selectView("history"));
  for (const id of ["tab-open", "tab-history"]) $(id).addEventListener("keydown", tabKeys);
  for (const id of ["filter-status", "filter-symbol", "filter-side", "filter-from", "filter-to"]) {
    $(id).addEventListener("change", filtersChanged);
  }
  $("filter-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(filtersChanged, 250);
  });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); filtersChanged(); });
  $("prev").addEventListener("click", () => { state.page -= 1; loadOrders(); });
  $("next").addEventListener("click", () => { state.page += 1; loadOrders(); });
  $("page-size").addEventListener("change", (e) => {
    state.pageSize = Number(e.target.value);
    state.page = 1;
    loadOrders();
  });
  $("cancel-all").addEventListener("click", cancelAll);
  $("export-csv").addEventListener("click", () => exportCsv().catch((e) => notice(`Export failed: ${e.message}`)));
  $("notify").addEventListener("click", async () => {
    if (!("Notification" in window)) return notice("This browser has no notifications.");
    const answer = await Notification.requestPermission();
    notice(answer === "granted" ? "You will be notified of order changes while this tab is hidden." : "Notifications are off.");
  });
  $("sound").checked = toasts.sound;
  $("sound").addEventListener("change", (e) => toasts.setSound(e.target.checked));
  $("orders").dataset.view = state.view;
}

async function boot() {
  wire();
  try {
    const answer = await api("GET", "/api/auth/me");
    showLoggedIn(answer.data);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) notice(error.message);
    showLoggedOut();
  }
}

boot();
