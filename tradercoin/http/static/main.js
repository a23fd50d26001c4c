// The orders page: wiring of auth, the order form, the live table and the operator view.

import { api, ApiError } from "./api.js";
import { LiveLink } from "./live.js";
import { OrdersTable } from "./orders.js";
import { Admin } from "./admin.js";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  page: 1,
  pageSize: 20,
  total: 0,
  filters: { status: "", symbol: "", q: "" },
  fetching: null,
  inFlight: [], // updates that arrived while a fetch was out: re-applied on its answer
};

const CONN_TEXT = {
  idle: "not connected", connecting: "connecting…", live: "live",
  reconnecting: "reconnecting…", offline: "offline, will reconnect",
};

function notice(text) {
  const p = $("notice");
  p.textContent = text || "";
  p.hidden = !text;
}

function setConn(s) {
  const p = $("conn");
  p.dataset.state = s;
  p.querySelector(".conn-text").textContent = CONN_TEXT[s] || s;
}

const table = new OrdersTable($("orders-body"), { onCancel: cancelOrder });
const admin = new Admin({ notice });
const live = new LiveLink({
  onState: setConn,
  onHello: (seq, first) => { if (first) loadOrders(); },
  onUpdate: (msg) => {
    if (state.fetching) state.inFlight.push(msg.data);
    const result = table.apply(msg.data, state);
    if (result === "added") { state.total += 1; pageInfo(); }
    $("orders-empty").hidden = state.total > 0;
  },
  onResync: () => loadOrders(),
  onAlert: (msg) => notice(msg.message || "The server sent an alert."),
});

// ------------------------------------------------------------------ auth

function showLoggedIn(user) {
  state.user = user;
  $("auth").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = user.username;
  $("who-role").textContent = user.role;
  $("trade").hidden = false;
  $("orders").hidden = false;
  $("admin").hidden = user.role !== "operator";
  loadSymbols();
  live.start();
  if (user.role === "operator") admin.load();
}

function showLoggedOut() {
  state.user = null;
  live.stop();
  $("auth").hidden = false;
  $("who").hidden = true;
  for (const id of ["trade", "orders", "admin"]) $(id).hidden = true;
  $("auth-username").focus();
}

async function submitAuth(event) {
  event.preventDefault();
  const action = event.submitter && event.submitter.value === "register" ? "register" : "login";
  const form = $("auth-form");
  const body = { username: form.username.value.trim(), password: form.password.value };
  $("auth-error").textContent = "";
  try {
    const answer = await api("POST", `/api/auth/${action}`, body);
    form.password.value = "";
    showLoggedIn(answer.data);
  } catch (error) {
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
    const names = answer.data.map((s) => s.symbol);
    const form = $("order-symbol");
    form.replaceChildren(...names.map((n) => new Option(n, n, false, n === "BTCUSDT")));
    const filter = $("filter-symbol");
    filter.replaceChildren(new Option("All", ""), ...names.map((n) => new Option(n, n)));
  } catch (error) {
    notice(`Symbols unavailable: ${error.message}`);
  }
}

async function loadOrders() {
  const params = new URLSearchParams({ page: state.page, page_size: state.pageSize });
  for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
  const ticket = Symbol("fetch");
  state.fetching = ticket;
  state.inFlight = [];
  try {
    const answer = await api("GET", `/api/orders?${params}`);
    if (state.fetching !== ticket) return; // a newer query won
    state.fetching = null;
    state.total = answer.total;
    table.render(answer.data);
    for (const order of state.inFlight) {  // newer than the page's read? then they win
      if (table.apply(order, state) === "added") state.total += 1;
    }
    state.inFlight = [];
    $("orders-empty").hidden = answer.data.length > 0;
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

async function placeOrder(event) {
  event.preventDefault();
  const form = $("order-form");
  const body = {
    symbol: form.symbol.value,
    side: form.side.value,
    type: form.type.value,
    quantity: form.quantity.value.trim(),
  };
  if (body.type === "LIMIT") body.price = form.price.value.trim();
  const result = $("order-result");
  result.textContent = "Placing…";
  $("place").disabled = true;
  try {
    const answer = await api("POST", "/api/orders", body);
    const o = answer.data;
    result.textContent = `Order ${o.id}: ${o.side} ${o.quantity} ${o.symbol}, ${o.status}.`;
    table.apply(o, state) === "added" && (state.total += 1, pageInfo());
    $("orders-empty").hidden = true;
  } catch (error) {
    result.textContent = `Not placed: ${error.message}`;
  } finally {
    $("place").disabled = false;
  }
}

async function cancelOrder(orderId, button) {
  button.disabled = true;
  try {
    const answer = await api("DELETE", `/api/orders/${orderId}`);
    table.apply(answer.data, state);
  } catch (error) {
    notice(`Cancel failed: ${error.message}`);
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ wiring

let searchTimer = null;

function filtersChanged() {
  const f = $("filters");
  state.filters = { status: f.status.value, symbol: f.symbol.value, q: f.q.value.trim() };
  state.page = 1;
  loadOrders();
}

function wire() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("logout").addEventListener("click", logout);
  $("order-form").addEventListener("submit", placeOrder);
  $("order-type").addEventListener("change", (e) => {
    const limit = e.target.value === "LIMIT";
    $("order-price").disabled = !limit;
    $("order-price").required = limit;
    $("order-price").placeholder = limit ? "price" : "market";
  });
  $("filter-status").addEventListener("change", filtersChanged);
  $("filter-symbol").addEventListener("change", filtersChanged);
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
