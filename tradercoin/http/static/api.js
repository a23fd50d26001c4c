// REST calls: same-origin, the session cookie, JSON bodies (the server's CSRF rule).

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

export async function api(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "Accept": "application/json" },
  };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    throw new ApiError(response.status, "bad_answer", `The server answered ${response.status}.`);
  }
  if (!response.ok) {
    const err = answer.error || {};
    throw new ApiError(
      response.status, err.code || "error", err.message || `The server answered ${response.status}.`,
      err.field,
    );
  }
  return answer;
}

// Show `message` beside the input `field` of `form` (prefix: the id prefix of its parts).
export function fieldError(prefix, field, message) {
  const input = document.querySelector(`#${prefix}-${field.replace(/_/g, "-")}`)
    || document.querySelector(`[name="${field}"]`);
  const slot = document.getElementById(`${prefix}-${field}-error`);
  if (slot) slot.textContent = message;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  return Boolean(slot);
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
}
