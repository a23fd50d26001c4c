// REST calls: same-origin, the session cookie, JSON bodies (the server's CSRF rule).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
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
    throw new ApiError(0, "network", "cannot reach the server");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    throw new ApiError(response.status, "bad_answer", `HTTP ${response.status}`);
  }
  if (!response.ok) {
    const err = answer.error || {};
    throw new ApiError(response.status, err.code || "error", err.message || `HTTP ${response.status}`);
  }
  return answer;
}
