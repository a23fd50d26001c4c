// A toast for every fill, partial fill, cancel, expiry and rejection, in every tab; a
// browser notification when the tab is hidden (if allowed); an optional short sound.

import * as fmt from "./format.js";

const KIND = {
  filled: "Filled", partially_filled: "Partially filled", canceled: "Canceled",
  expired: "Expired", rejected: "Rejected",
};
const LIFETIME = 8000;

export class Toasts {
  constructor(region) {
    this.region = region;
    this.seen = new Map(); // order id -> "status/filled" last announced
    this.sound = localStorage.getItem("tc-sound") === "on";
    this.audio = null;
  }

  // Announce the change of `order` if it is one a trader wants to hear of.
  order(order) {
    const title = KIND[order.status];
    if (!title) return;
    const key = `${order.status}/${order.filled_quantity}`;
    if (this.seen.get(order.id) === key) return;
    this.seen.set(order.id, key);
    const side = order.side === "BUY" ? "Buy" : "Sell";
    let text = `${title}: ${side} ${fmt.qty(order.symbol, order.quantity)} ${order.symbol} (order ${order.id})`;
    if (Number(order.filled_quantity) > 0) text += `, filled ${fmt.qty(order.symbol, order.filled_quantity)} at ${fmt.price(order.symbol, order.avg_price)}`;
    if (order.status === "rejected" && order.note) text += `. Reason: ${order.note}`;
    this.show(text, order.status);
  }

  show(text, kind = "info") {
    const toast = document.createElement("div");
    toast.className = `toast toast-${kind}`;
    toast.dataset.kind = kind;
    toast.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "small secondary";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => toast.remove());
    toast.append(close);
    this.region.append(toast);
    setTimeout(() => toast.remove(), LIFETIME);
    if (document.hidden && "Notification" in window && Notification.permission === "granted") {
      new Notification("tradercoin", { body: text, tag: `tc-${Date.now()}` });
    }
    if (this.sound) this.beep();
  }

  beep() {
    try {
      this.audio = this.audio || new AudioContext();
      const osc = this.audio.createOscillator();
      const gain = this.audio.createGain();
      gain.gain.value = 0.05;
      osc.frequency.value = 880;
      osc.connect(gain).connect(this.audio.destination);
      osc.start();
      osc.stop(this.audio.currentTime + 0.12);
    } catch (error) { /* no audio here */ }
  }

  setSound(on) {
    this.sound = on;
    localStorage.setItem("tc-sound", on ? "on" : "off");
  }
}
