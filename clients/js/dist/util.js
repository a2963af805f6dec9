// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
const TERMINAL = {
  completed: "completed",
  failed: "failed",
  orphaned: "failed",
  cancelled: "cancelled"
};
const FATAL_STATUS = { 401: true, 403: true, 404: true };
const DEFAULTS = {
  baseDelayMs: 500,
  maxDelayMs: 15e3,
  maxAttempts: 12,
  heartbeatMs: 15e3,
  watchdogFactor: 2.5,
  persist: false,
  withCredentials: false,
  token: null,
  getToken: null,
  from: null,
  lastEventId: null,
  multiplex: "auto",
  shareAcrossTabs: false,
  random: Math.random
};
function withDefaults(options) {
  const merged = { ...DEFAULTS };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (value !== void 0) merged[key] = value;
  }
  return merged;
}
function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
  return Math.floor(random() * ceiling);
}
function withParams(url, params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== void 0 && value !== "") {
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
    }
  }
  if (!parts.length) return url;
  return url + (url.indexOf("?") === -1 ? "?" : "&") + parts.join("&");
}
function subResource(url, what) {
  return url.replace(/\/?(\?.*)?$/, "/" + what + "$1");
}
function storage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}
function parseId(id) {
  const match = /^(\d+)-(\d+)$/.exec(id ?? "");
  return match ? [Number(match[1]), Number(match[2])] : null;
}
function isAfter(a, b) {
  const x = parseId(a);
  const y = parseId(b);
  if (!x) return false;
  if (!y) return true;
  return x[0] > y[0] || x[0] === y[0] && x[1] > y[1];
}
function splitStreamUrl(url) {
  const match = /^(.*)\/streams\/([A-Za-z0-9_-]+)\/?$/.exec(url.split("?")[0] ?? "");
  if (!match || url.indexOf("?") !== -1) return null;
  return { prefix: match[1] ?? "", streamId: match[2] ?? "" };
}
async function askToken(options) {
  if (!options.getToken) return options.token;
  const token = await options.getToken();
  options.token = token ?? null;
  return options.token;
}
function onWakeUp(listener) {
  const win = typeof window !== "undefined" ? window : null;
  const doc = typeof document !== "undefined" ? document : null;
  if (!win || !win.addEventListener) return () => {
  };
  const visible = () => {
    if (!doc || doc.visibilityState === "visible") listener();
  };
  win.addEventListener("online", listener);
  win.addEventListener("pageshow", listener);
  doc?.addEventListener("visibilitychange", visible);
  return () => {
    win.removeEventListener("online", listener);
    win.removeEventListener("pageshow", listener);
    doc?.removeEventListener("visibilitychange", visible);
  };
}
export {
  DEFAULTS,
  FATAL_STATUS,
  TERMINAL,
  askToken,
  backoffDelay,
  isAfter,
  onWakeUp,
  parseId,
  splitStreamUrl,
  storage,
  subResource,
  withDefaults,
  withParams
};
