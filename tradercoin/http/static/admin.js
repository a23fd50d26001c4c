// The operator view: the supervisor's actors (refreshed every 5 s), each user's poll policy,
// and the rate governor's use of the exchange's weight budget over the last minutes.

import { api } from "./api.js";
import * as fmt from "./format.js";

const REFRESH_MS = 5000;
const HISTORY = 120; // points kept: 10 minutes at one per 5 s

function td(text, label) {
  const cell = document.createElement("td");
  cell.textContent = text === null || text === undefined ? "—" : String(text);
  if (label) cell.dataset.label = label;
  return cell;
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value >= 10 ? `${Math.round(value)} s` : `${Number(value.toFixed(2))} s`;
}

export class Admin {
  constructor({ notice }) {
    this.notice = notice;
    this.body = document.getElementById("actors-body");
    this.timer = null;
    this.history = [];
    this.editing = new Set(); // user ids whose policy field has focus: not re-rendered
  }

  start() {
    this.stop();
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async load() {
    try {
      const [actors, governor, streams] = await Promise.all([
        api("GET", "/api/admin/actors"),
        api("GET", "/api/admin/governor"),
        api("GET", "/api/admin/streams"),
      ]);
      this.renderActors(actors.data);
      this.renderGovernor(governor.data);
      this.renderStreams(streams.data);
    } catch (error) {
      if (error.status === 401 || error.status === 403) return this.stop();
      this.notice(`Operator view unavailable: ${error.message}`);
    }
  }

  renderActors(rows) {
    const keep = new Map([...this.body.querySelectorAll("tr")].map((tr) => [Number(tr.dataset.userId), tr]));
    const fresh = rows.map((a) => {
      const old = keep.get(a.user_id);
      if (old && this.editing.has(a.user_id)) return old;
      return this.row(a, old);
    });
    this.body.replaceChildren(...fresh);
  }

  row(actor, old) {
    const tr = document.createElement("tr");
    tr.dataset.userId = actor.user_id;
    const policy = old ? old.lastElementChild : this.policyCell(actor.user_id, actor.policy_interval);
    tr.append(
      td(`${actor.username || "?"} (#${actor.user_id})`, "User"), td(actor.state, "State"),
      td(actor.pending_orders, "Open orders"), td(actor.stream_state, "User stream"),
      td(seconds(actor.effective_interval), "Interval in force"), td(actor.interval_reason, "Why"),
      td(actor.sessions, "Browser tabs"), td(actor.error_count, "Exchange errors"), policy,
    );
    if (actor.last_error) tr.children[7].title = actor.last_error;
    return tr;
  }

  renderGovernor(g) {
    const paused = g.paused_until ? `; paused until ${fmt.clock(g.paused_until)}` : "";
    document.getElementById("governor").textContent =
      `${g.used_weight} of ${g.limit_per_minute} weight used in the last minute ` +
      `(exchange limit ${g.budget_per_minute}; demand ${Math.round(g.demand_per_minute)}/min, ` +
      `intervals stretched x${g.stretch_normal.toFixed(2)})${paused}.`;
    this.history.push([Date.now(), g.used_weight, g.limit_per_minute]);
    if (this.history.length > HISTORY) this.history.shift();
    this.chart();
  }

  renderStreams(s) {
    const line = document.getElementById("streams");
    if (!s.hub) {
      line.textContent = s.mode === "hub" ? "No user stream (polling only)." :
        "One exchange connection per user (stream mode per-user).";
      return;
    }
    const h = s.hub;
    const per = h.keys_per_connection.length ? ` (${h.keys_per_connection.join(", ")} keys each)` : "";
    line.textContent =
      `${h.keys} users' streams on ${h.connections} exchange connection(s)${per}; ` +
      `${h.keys_down} waiting; ${h.attempts_in_window} connection attempts in the last 5 minutes ` +
      `(the exchange allows 300); ${h.refusals} refused, ${h.drops} dropped, ${h.gaps} gaps.`;
  }

  chart() {
    const limit = Math.max(...this.history.map((h) => h[2]), 1);
    const n = this.history.length;
    const points = this.history.map(([, used], i) => {
      const x = n === 1 ? 300 : (i * 300) / (HISTORY - 1) + (300 - ((n - 1) * 300) / (HISTORY - 1));
      const y = 60 - 6 - (used / limit) * 48;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    document.getElementById("budget-line").setAttribute("points", points.join(" "));
    document.getElementById("budget-chart").dataset.points = String(n);
  }

  policyCell(userId, interval) {
    const cell = document.createElement("td");
    cell.dataset.label = "Poll policy";
    const form = document.createElement("form");
    form.className = "inline";
    const id = `poll-${userId}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.className = "visually-hidden";
    label.textContent = `Poll interval of user ${userId}`;
    const input = document.createElement("input");
    input.id = id;
    input.size = 5;
    input.value = interval ? `${interval}s` : "";
    input.placeholder = "5s";
    input.required = true;
    input.addEventListener("focus", () => this.editing.add(userId));
    input.addEventListener("blur", () => this.editing.delete(userId));
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "small";
    button.textContent = "Set";
    form.append(label, input, button);
    form.addEventListener("submit", (e) => this.setInterval(e, userId, input));
    cell.append(form);
    return cell;
  }

  async setInterval(event, userId, input) {
    event.preventDefault();
    try {
      const answer = await api("PUT", `/api/admin/users/${userId}/poll-policy`, {
        interval: input.value.trim(),
      });
      input.value = `${answer.data.interval}s`;
      input.removeAttribute("aria-invalid");
      this.notice(`User ${userId} now polls every ${answer.data.interval}s.`);
      this.load();
    } catch (error) {
      input.setAttribute("aria-invalid", "true");
      this.notice(`Not changed: ${error.message}`);
    }
  }
}
