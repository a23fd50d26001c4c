// Numbers as a trader reads them: by the symbol's tick and step size, thousands separators,
// the same everywhere. Values arrive as decimal strings and are never used for money math
// beyond previews.

const symbols = new Map(); // symbol -> its rules from GET /api/symbols

export function setSymbols(rows) {
  symbols.clear();
  for (const row of rows) symbols.set(row.symbol, row);
}

export function rules(symbol) {
  return symbols.get(symbol) || null;
}

export function decimalsOf(step) {
  if (!step) return 2;
  const text = String(step);
  const dot = text.indexOf(".");
  if (dot < 0) return 0;
  const trimmed = text.replace(/0+$/, "");
  return Math.max(0, trimmed.length - dot - 1);
}

const formatters = new Map();

function formatter(decimals) {
  let f = formatters.get(decimals);
  if (!f) {
    f = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals,
    });
    formatters.set(decimals, f);
  }
  return f;
}

export function fixed(value, decimals) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return formatter(decimals).format(n);
}

export function price(symbol, value) {
  const r = rules(symbol);
  return fixed(value, r ? decimalsOf(r.tick_size) : 2);
}

export function qty(symbol, value) {
  const r = rules(symbol);
  return fixed(value, r ? decimalsOf(r.step_size) : 3);
}

export function usdt(value) {
  return fixed(value, 2);
}

export function signedUsdt(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return (n > 0 ? "+" : "") + fixed(n, 2);
}

export function time(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { timeStyle: "medium" });
}

// The smallest quantity worth at least the minimum notional at `mark`, on the step grid.
export function minQuantity(symbol, mark) {
  const r = rules(symbol);
  if (!r) return null;
  const step = Number(r.step_size);
  let q = Number(r.min_qty);
  if (mark && Number(r.min_notional) > 0) {
    q = Math.max(q, Math.ceil((Number(r.min_notional) * 1.02) / mark / step) * step);
  }
  return q.toFixed(decimalsOf(r.step_size));
}

// Is `text` a multiple of `step` (both decimal strings)? Exact, on scaled integers.
export function onStep(text, step) {
  const d = Math.max(decimalsOf(step), decimalsOf(text));
  if (d > 12) return false;
  const scale = 10 ** d;
  const v = Math.round(Number(text) * scale);
  const s = Math.round(Number(step) * scale);
  return s > 0 && v % s === 0 && Math.abs(Number(text) * scale - v) < 1e-6;
}
