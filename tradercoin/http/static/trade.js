// The order form: the symbol's filters and mark price, a valid default quantity, checks
// before sending (a human message beside the field), a notional and margin preview.

import { api, clearErrors, fieldError } from "./api.js";
import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

export class TradeForm {
  constructor({ onPlaced, onSymbol, leverageOf }) {
    this.form = $("order-form");
    this.onPlaced = onPlaced;
    this.onSymbol = onSymbol;
    this.leverageOf = leverageOf;
    this.marks = new Map();
    this.userTouchedQuantity = false;
    this.form.addEventListener("submit", (e) => this.submit(e));
    $("order-type").addEventListener("change", () => this.typeChanged());
    $("order-symbol").addEventListener("change", () => this.symbolChanged());
    $("order-quantity").addEventListener("input", () => { this.userTouchedQuantity = true; this.preview(); });
    $("order-price").addEventListener("input", () => this.preview());
  }

  get symbol() { return $("order-symbol").value; }

  setSymbols(rows) {
    const select = $("order-symbol");
    select.replaceChildren(...rows.map((r) => new Option(r.symbol, r.symbol, false, r.symbol === "BTCUSDT")));
    this.symbolChanged();
  }

  symbolChanged() {
    const r = fmt.rules(this.symbol);
    $("symbol-rules").textContent = r
      ? `Tick ${r.tick_size.replace(/0+$/, "").replace(/\.$/, "")} · Step ${r.step_size.replace(/0+$/, "").replace(/\.$/, "")} · Min notional ${fmt.usdt(r.min_notional)} USDT`
      : "";
    this.userTouchedQuantity = false;
    this.showMark();
    this.defaultQuantity();
    this.onSymbol(this.symbol);
  }

  typeChanged() {
    const limit = $("order-type").value === "LIMIT";
    const price = $("order-price");
    price.disabled = !limit;
    price.required = limit;
    $("order-tif").disabled = !limit;
    price.placeholder = limit ? "price" : "market";
    if (!limit) {
      price.value = "";
      price.removeAttribute("aria-invalid");
      $("order-price-error").textContent = "";
    } else if (!price.value && this.marks.get(this.symbol)) {
      price.value = fmt.price(this.symbol, this.marks.get(this.symbol)).replace(/,/g, "");
    }
    this.preview();
  }

  setMark(symbol, mark) {
    this.marks.set(symbol, Number(mark));
    if (symbol === this.symbol) {
      this.showMark();
      if (!this.userTouchedQuantity) this.defaultQuantity();
      this.preview();
    }
  }

  showMark() {
    const mark = this.marks.get(this.symbol);
    $("mark-price").textContent = mark ? fmt.price(this.symbol, mark) : "—";
  }

  defaultQuantity() {
    const q = fmt.minQuantity(this.symbol, this.marks.get(this.symbol));
    if (q === null) return;
    $("order-quantity").value = q;
    $("order-quantity-hint").textContent = `At least ${q} at the current mark price.`;
    this.preview();
  }

  priceForPreview() {
    return $("order-type").value === "LIMIT" ? Number($("order-price").value) : this.marks.get(this.symbol);
  }

  preview() {
    const q = Number($("order-quantity").value);
    const p = this.priceForPreview();
    if (!(q > 0) || !(p > 0)) {
      $("preview").textContent = "";
      return;
    }
    const notional = q * p;
    const leverage = this.leverageOf(this.symbol);
    const margin = leverage ? ` · margin at ${leverage}x ≈ ${fmt.usdt(notional / leverage)} USDT` : "";
    $("preview").textContent = `Notional ≈ ${fmt.usdt(notional)} USDT${margin}`;
  }

  // A sentence for the first thing wrong, and its field; null when fine to send.
  check(body) {
    const r = fmt.rules(body.symbol);
    const decimal = /^(\d+(\.\d*)?|\.\d+)$/;
    if (!decimal.test(body.quantity)) return ["quantity", "Quantity must be a number, e.g. 0.01."];
    if (Number(body.quantity) <= 0) return ["quantity", "Quantity must be greater than zero."];
    if (r && !fmt.onStep(body.quantity, r.step_size)) {
      return ["quantity", `Quantity must be a multiple of ${Number(r.step_size)} (the step size of ${body.symbol}).`];
    }
    if (body.type === "LIMIT") {
      if (!body.price) return ["price", "A limit order needs a price."];
      if (!decimal.test(body.price) || Number(body.price) <= 0) return ["price", "Price must be a number greater than zero."];
      if (r && !fmt.onStep(body.price, r.tick_size)) {
        return ["price", `Price must be a multiple of ${Number(r.tick_size)} (the tick size of ${body.symbol}).`];
      }
    }
    const p = body.type === "LIMIT" ? Number(body.price) : this.marks.get(body.symbol);
    // a reduce-only order may be worth less than the minimum notional (Binance allows it)
    if (r && p && !body.reduce_only && Number(body.quantity) * p < Number(r.min_notional)) {
      return ["quantity", `The order is worth ${fmt.usdt(Number(body.quantity) * p)} USDT; ${body.symbol} needs at least ${fmt.usdt(r.min_notional)} USDT (a quantity of ${fmt.minQuantity(body.symbol, p)} or more).`];
    }
    return null;
  }

  body() {
    const f = this.form;
    const body = {
      symbol: f.symbol.value, side: f.side.value, type: f.type.value,
      quantity: f.quantity.value.trim().replace(/,/g, ""),
    };
    if (body.type === "LIMIT") {
      body.price = f.price.value.trim().replace(/,/g, "");
      body.time_in_force = f.time_in_force.value;
    }
    if (f.reduce_only.checked) body.reduce_only = true;
    return body;
  }

  async submit(event) {
    event.preventDefault();
    clearErrors(this.form);
    const body = this.body();
    const result = $("order-result");
    const problem = this.check(body);
    if (problem) {
      fieldError("order", problem[0], problem[1]);
      result.textContent = "Not placed: see the highlighted field.";
      return;
    }
    result.textContent = "Placing…";
    $("place").disabled = true;
    try {
      const answer = await api("POST", "/api/orders", body);
      const o = answer.data;
      result.textContent = `Order ${o.id}: ${o.side === "BUY" ? "buy" : "sell"} ${fmt.qty(o.symbol, o.quantity)} ${o.symbol}, ${o.status}.`;
      this.onPlaced(o);
    } catch (error) {
      if (error.field) fieldError("order", error.field, error.message);
      result.textContent = `Not placed: ${error.message}`;
    } finally {
      $("place").disabled = false;
    }
  }
}
