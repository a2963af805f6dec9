/** Small pieces shared by the single-stream source and the multiplexing hub. */

import type { SourceOptions, Status, TokenSource } from "./types.js";

/** Terminal event types and the status each ends a source with. */
export const TERMINAL: Record<string, Status> = {
  completed: "completed",
  failed: "failed",
  orphaned: "failed",
  cancelled: "cancelled",
};

/** Statuses the /recover status code maps to "give up". */
export const FATAL_STATUS: Record<number, true> = { 401: true, 403: true, 404: true };

/** The defaults of every option (see {@link SourceOptions}). */
export const DEFAULTS: Required<Omit<SourceOptions, "token" | "getToken" | "from" | "lastEventId">> & {
  token: string | null;
  getToken: TokenSource | null;
  from: SourceOptions["from"];
  lastEventId: string | null;
} = {
  baseDelayMs: 500,
  maxDelayMs: 15000,
  maxAttempts: 12,
  heartbeatMs: 15000,
  watchdogFactor: 2.5,
  persist: false,
  withCredentials: false,
  token: null,
  getToken: null,
  from: null,
  lastEventId: null,
  multiplex: "auto",
  shareAcrossTabs: false,
  random: Math.random,
};

export type Options = typeof DEFAULTS;

/** Merge options over the defaults. */
export function withDefaults(options?: SourceOptions): Options {
  const merged = { ...DEFAULTS } as Options;
  for (const [key, value] of Object.entries(options ?? {})) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

/** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)] ms. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
  return Math.floor(random() * ceiling);
}

/** `url` with the query parameters that have a value appended. */
export function withParams(url: string, params: Record<string, string | null | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
    }
  }
  if (!parts.length) return url;
  return url + (url.indexOf("?") === -1 ? "?" : "&") + parts.join("&");
}

/** `<stream url>/<what>`, keeping the stream URL's query. */
export function subResource(url: string, what: string): string {
  return url.replace(/\/?(\?.*)?$/, "/" + what + "$1");
}

/** The page's sessionStorage, or null where it is disabled. */
export function storage(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // disabled, or a sandboxed frame
  }
}

/** Event ids `<ms>-<n>` as a pair of integers; null if malformed. */
export function parseId(id: string | null | undefined): [number, number] | null {
  const match = /^(\d+)-(\d+)$/.exec(id ?? "");
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/** True if event id `a` comes after `b` in its stream (a null `b` is before everything). */
export function isAfter(a: string | null | undefined, b: string | null | undefined): boolean {
  const x = parseId(a);
  const y = parseId(b);
  if (!x) return false;
  if (!y) return true;
  return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
}

/** The prefix and stream id of `<prefix>/streams/<id>`, or null. */
export function splitStreamUrl(url: string): { prefix: string; streamId: string } | null {
  const match = /^(.*)\/streams\/([A-Za-z0-9_-]+)\/?$/.exec(url.split("?")[0] ?? "");
  if (!match || url.indexOf("?") !== -1) return null;
  return { prefix: match[1] ?? "", streamId: match[2] ?? "" };
}

/** Ask a token source, if any; fall back to the fixed token. */
export async function askToken(options: Options): Promise<string | null> {
  if (!options.getToken) return options.token;
  const token = await options.getToken();
  options.token = token ?? null;
  return options.token;
}

/** Run `listener` on the page's wake-up signals (online, visible, pageshow); returns the remover. */
export function onWakeUp(listener: () => void): () => void {
  const win = typeof window !== "undefined" ? window : null;
  const doc = typeof document !== "undefined" ? document : null;
  if (!win || !win.addEventListener) return () => {};
  const visible = (): void => {
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
