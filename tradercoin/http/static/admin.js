// The operator view: the supervisor's actors and each user's poll interval.

import { api } from "./api.js";

function td(text) {
  const cell = document.createElement("td");
  cell.textContent = text === null || text === undefined ? "—" : String(text);
  return cell;
}

export class Admin {
  constructor({ notice }) {
    this.notice = notice;
    this.body = document.getElementById("actors-body");
    document.getElementById("admin-refresh").addEventListener("click", () => this.load());
  }

  async load() {
    try {
      const [actors, governor] = await Promise.all([
        api("GET", "/api/admin/actors"),
        api("GET", "/api/admin/governor"),
      ]);
      this.body.replaceChildren(...actors.data.map((a) => this.row(a)));
      const g = governor.data;
      document.getElementById("governor").textContent =
        `Exchange weight: ${g.used_weight} of ${g.limit_per_minute} a minute used` +
        (g.paused_until ? `; paused until ${new Date(g.paused_until).toLocaleTimeString()}` : "");
    } catch (error) {
      this.notice(`Operator view unavailable: ${error.message}`);
    }
  }

  row(actor) {
    const tr = document.createElement("tr");
    const interval = actor.effective_interval === null ? null : `${actor.effective_interval}s`;
    tr.append(
      td(`${actor.username || "?"} (#${actor.user_id})`), td(actor.state), td(actor.pending_orders),
      td(actor.stream_state), td(interval), td(actor.sessions), td(actor.error_count),
      this.policyCell(actor.user_id),
    );
    return tr;
  }

  policyCell(userId) {
    const cell = document.createElement("td");
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
    input.placeholder = "5s";
    input.required = true;
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "small";
    button.textContent = "Set";
    form.append(label, input, button);
    form.addEventListener("submit", (e) => this.setInterval(e, userId, input));
    cell.append(form);
    api("GET", `/api/admin/users/${userId}/poll-policy`)
      .then((a) => { input.value = `${a.data.interval}s`; })
      .catch(() => {});
    return cell;
  }

  async setInterval(event, userId, input) {
    event.preventDefault();
    try {
      const answer = await api("PUT", `/api/admin/users/${userId}/poll-policy`, {
        interval: input.value.trim(),
      });
      input.value = `${answer.data.interval}s`;
      this.notice(`User ${userId} now polls every ${answer.data.interval}s.`);
    } catch (error) {
      this.notice(`Not changed: ${error.message}`);
    }
  }
}
