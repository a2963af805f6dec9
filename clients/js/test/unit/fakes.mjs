// Fakes of the browser's EventSource, fetch and page events, for the unit
// tests under Node's test runner. The real browser runs in tests/browser.

export class FakeEventSource {
  static all = [];
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.closed = false;
    this.listeners = {};
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    FakeEventSource.all.push(this);
  }
  addEventListener(name, listener) {
    (this.listeners[name] ??= []).push(listener);
  }
  close() {
    this.closed = true;
  }
  get params() {
    return new URL(this.url, "http://test").searchParams;
  }
  open() {
    this.onopen?.({});
  }
  send(envelope, lastEventId = "") {
    this.onmessage?.({ data: JSON.stringify(envelope), lastEventId });
  }
  heartbeat() {
    for (const listener of this.listeners.heartbeat ?? []) listener({});
  }
  fail() {
    this.onerror?.({});
  }
  static open() {
    return FakeEventSource.all.filter((s) => !s.closed);
  }
}

/** A fetch answering from `routes`: path -> (url, init) => {status, body}. */
export function fakeFetch(routes, calls = []) {
  return async (url, init = {}) => {
    calls.push({ url, init });
    const path = new URL(url, "http://test").pathname;
    const route = Object.entries(routes).find(([suffix]) => path.endsWith(suffix));
    const answer = route ? route[1](url, init) : { status: 404, body: { error: "stream_not_found" } };
    return {
      status: answer.status,
      ok: answer.status >= 200 && answer.status < 300,
      json: async () => answer.body,
      text: async () => JSON.stringify(answer.body),
    };
  };
}

export function install({ routes = {}, calls = [] } = {}) {
  FakeEventSource.all = [];
  globalThis.EventSource = FakeEventSource;
  globalThis.fetch = fakeFetch(routes, calls);
  return calls;
}

export const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(check, ms = 1000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + check);
    await tick(2);
  }
}
