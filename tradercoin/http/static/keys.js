// Settings: store, replace or remove the exchange keys. The service checks them with the
// exchange on save; the secret never comes back, only the key's last 4.

import { api, clearErrors, fieldError } from "./api.js";

const $ = (id) => document.getElementById(id);

export class KeysPanel {
  constructor({ onChanged }) {
    this.onChanged = onChanged;
    $("keys-form").addEventListener("submit", (e) => this.save(e));
    $("keys-remove").addEventListener("click", () => this.remove());
    $("keys-close").addEventListener("click", () => this.toggle(false));
    $("open-settings").addEventListener("click", () => this.toggle($("settings").hidden));
  }

  toggle(show) {
    $("settings").hidden = !show;
    $("open-settings").setAttribute("aria-expanded", String(show));
    if (show) {
      this.load();
      $("keys-api-key").focus();
    } else {
      $("open-settings").focus();
    }
  }

  describe(data) {
    $("keys-status").textContent = data
      ? `Stored: API key ending in ${data.key_last4}${data.testnet ? " (testnet)" : ""}.`
      : "No exchange keys stored: orders cannot be placed until you add them.";
    $("keys-remove").disabled = !data;
  }

  async load() {
    try {
      this.describe((await api("GET", "/api/credentials")).data);
    } catch (error) {
      $("keys-status").textContent = `Keys unavailable: ${error.message}`;
    }
  }

  async save(event) {
    event.preventDefault();
    const form = $("keys-form");
    clearErrors(form);
    const body = {
      api_key: form.api_key.value.trim(), api_secret: form.api_secret.value.trim(),
      testnet: form.testnet.checked,
    };
    if (!body.api_key) return fieldError("keys", "api_key", "Enter the API key.");
    if (!body.api_secret) return fieldError("keys", "api_secret", "Enter the API secret.");
    $("keys-result").textContent = "Checking the keys with the exchange…";
    $("keys-save").disabled = true;
    try {
      const answer = await api("PUT", "/api/credentials", body);
      form.api_secret.value = "";
      form.api_key.value = "";
      this.describe(answer.data);
      const check = answer.data.check;
      $("keys-result").textContent = check ? `Saved. ${check.message}` : "Saved.";
      this.onChanged();
    } catch (error) {
      if (error.field) fieldError("keys", error.field, error.message);
      $("keys-result").textContent = `Not saved: ${error.message}`;
    } finally {
      $("keys-save").disabled = false;
    }
  }

  async remove() {
    try {
      this.describe((await api("DELETE", "/api/credentials")).data);
      $("keys-result").textContent = "Keys removed; orders are no longer watched.";
      this.onChanged();
    } catch (error) {
      $("keys-result").textContent = `Not removed: ${error.message}`;
    }
  }
}
