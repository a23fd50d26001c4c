// The /ws link: hello, order_update, resync, alert, price, account; reconnects, resumes from
// the last seq and re-sends the price subscription.

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 10000;
const STALE_AFTER = 60000; // no heartbeat for this long: the link is dead, reconnect

export class LiveLink {
  // handlers: {onHello(seq), onUpdate(msg), onResync(seq), onAlert(msg), onState(state),
  //            onPrice(msg), onAccount(msg)}
  constructor(handlers) {
    this.h = handlers;
    this.lastSeq = null;
    this.prices = [];
    this.ws = null;
    this.delay = BACKOFF_MIN;
    this.timer = null;
    this.watchdog = null;
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.ws && this.ws.close());
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.lastSeq = null;
    this.h.onState("idle");
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const since = this.lastSeq === null ? "" : `?since=${this.lastSeq}`;
    return `${scheme}://${location.host}/ws${since}`;
  }

  connect() {
    if (this.stopped) return;
    if (!navigator.onLine) {
      this.h.onState("offline"); // the "online" event reconnects
      return;
    }
    this.h.onState(this.lastSeq === null ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = () => this.closed(ws);
    ws.onerror = () => ws.close();
  }

  closed(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.watchdog);
    if (this.stopped) return;
    this.h.onState("offline");
    const jitter = Math.random() * this.delay * 0.3;
    this.timer = setTimeout(() => this.connect(), this.delay + jitter);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX);
  }

  reconnectNow() {
    if (this.stopped || (this.ws && this.ws.readyState === WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.delay = BACKOFF_MIN;
    if (!this.ws) this.connect();
  }

  // Ask for live mark prices of `symbols` (kept across reconnects).
  subscribe(symbols) {
    this.prices = symbols;
    this.sendJson({ type: "subscribe", prices: symbols });
  }

  sendJson(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  alive() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.ws && this.ws.close(), STALE_AFTER);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (error) {
      return;
    }
    this.alive();
    switch (msg.type) {
      case "hello": {
        this.delay = BACKOFF_MIN;
        const first = this.lastSeq === null;
        if (first) this.lastSeq = msg.seq;
        this.h.onState("live");
        this.h.onHello(msg.seq, first);
        if (this.prices.length) this.sendJson({ type: "subscribe", prices: this.prices });
        break;
      }
      case "price":
        this.h.onPrice(msg);
        break;
      case "account":
        this.h.onAccount(msg);
        break;
      case "order_update":
        if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already applied
        this.lastSeq = msg.seq;
        this.h.onUpdate(msg);
        break;
      case "resync":
        this.lastSeq = msg.seq;
        this.h.onResync(msg.seq);
        break;
      case "alert":
        this.h.onAlert(msg);
        break;
      default:
        break; // heartbeat, pong, error
    }
  }
}
