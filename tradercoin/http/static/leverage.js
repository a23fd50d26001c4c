// Leverage: the initial leverage of the order form's symbol, set at the exchange with the
// user's own keys (PUT /api/leverage); a refusal shows as the exchange's reason.

import { api, clearErrors, fieldError } from "./api.js";
import * as fmt from "./format.js";

const $ = (id) => document.getElementById(id);

export class LeverageForm {
  constructor({ symbolOf, onChanged }) {
    this.form = $("leverage-form");
    this.symbolOf = symbolOf;
    this.onChanged = onChanged;
    this.form.addEventListener("submit", (e) => this.submit(e));
  }

  show(symbol) {
    $("lev-symbol").textContent = symbol;
  }

  async submit(event) {
    event.preventDefault();
    clearErrors(this.form);
    const symbol = this.symbolOf();
    const text = $("lev-leverage").value.trim();
    const result = $("lev-result");
    if (!/^\d{1,3}$/.test(text) || Number(text) < 1 || Number(text) > 125) {
      fieldError("lev", "leverage", "Leverage must be a whole number from 1 to 125.");
      result.textContent = "Not changed: see the highlighted field.";
      return;
    }
    result.textContent = "Changing…";
    $("lev-set").disabled = true;
    try {
      const answer = await api("PUT", "/api/leverage", { symbol, leverage: Number(text) });
      const d = answer.data;
      result.textContent = `${d.symbol} leverage is now ${d.leverage}x (positions up to ${fmt.usdt(d.max_notional_value)} USDT).`;
      this.onChanged(d);
    } catch (error) {
      if (error.field === "leverage") fieldError("lev", "leverage", error.message);
      result.textContent = `Not changed: ${error.message}`;
    } finally {
      $("lev-set").disabled = false;
    }
  }
}
