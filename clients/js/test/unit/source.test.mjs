// The single-stream client algorithm (docs/protocol.rst, "The client
// algorithm"), under Node's test runner with a fake EventSource and fetch.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { backoffDelay, isAfter, ResilientEventSource } from "../../dist/index.js";
import { FakeEventSource, install, tick, until } from "./fakes.mjs";

const URL_A = "/sse/streams/a";
const fast = { baseDelayMs: 1, maxDelayMs: 2, multiplex: false };
const active = () => ({ status: 200, body: { status: "active", streamId: "a" } });

function collect(source) {
  const events = [];
  const statuses = [];
  source.onevent = (event) => events.push(event);
  source.onstatus = (status) => statuses.push(status);
  return { events, statuses };
}

beforeEach(() => install());

test("full-jitter backoff stays within [0, min(cap, base * 2^n))", () => {
  for (let attempt = 0; attempt < 8; attempt++) {
    assert.equal(backoffDelay(attempt, 500, 15000, () => 0), 0);
    assert.equal(backoffDelay(attempt, 500, 15000, () => 0.999999), Math.floor(0.999999 * Math.min(15000, 500 * 2 ** attempt)));
  }
});

test("event ids compare as pairs of integers, not as text", () => {
  assert.ok(isAfter("10-0", "9-5"));
  assert.ok(isAfter("9-10", "9-9"));
  assert.ok(!isAfter("9-9", "9-9"));
  assert.ok(isAfter("1-0", null));
});

test("an ended stream delivers its end from /recover and never connects", async () => {
  install({
    routes: {
      "/a/recover": () => ({
        status: 200,
        body: { status: "completed", streamId: "a", terminalEventType: "completed", terminalEventData: { text: "hi" }, eventId: "5-0" },
      }),
    },
  });
  const source = new ResilientEventSource(URL_A, fast);
  const { events } = collect(source);
  await until(() => source.status === "completed");
  assert.deepEqual(events, [{ id: "5-0", type: "completed", data: { text: "hi" }, stream: "a" }]);
  assert.equal(FakeEventSource.all.length, 0);
});

test("it resumes after the last id it saw, and the attempt count restarts on connected", async () => {
  install({ routes: { "/a/recover": active } });
  const source = new ResilientEventSource(URL_A, fast);
  const { events } = collect(source);
  await until(() => FakeEventSource.all.length === 1);
  const first = FakeEventSource.all[0];
  assert.equal(first.params.get("lastEventId"), null);
  first.open();
  first.send({ type: "connected", heartbeatMs: 1000 });
  first.send({ type: "token", data: 1 }, "1-0");
  first.send({ type: "token", data: 2 }, "2-0");
  first.fail();
  assert.equal(source.status, "reconnecting");
  await until(() => FakeEventSource.all.length === 2);
  const second = FakeEventSource.all[1];
  assert.equal(second.params.get("lastEventId"), "2-0");
  assert.equal(source.attempts, 1);
  second.open();
  second.send({ type: "connected" });
  assert.equal(source.attempts, 0);
  second.send({ type: "completed", data: "done" }, "3-0");
  assert.equal(source.status, "completed");
  assert.ok(second.closed);
  assert.deepEqual(events.map((e) => e.data), [1, 2, "done"]);
  assert.equal(source.cursor, "3-0");
});

test("a cursor handed over (a server-rendered page) connects at once, without /recover", async () => {
  const calls = install();
  const source = new ResilientEventSource(URL_A, { ...fast, lastEventId: "7-1" });
  await until(() => FakeEventSource.all.length === 1);
  assert.equal(FakeEventSource.all[0].params.get("lastEventId"), "7-1");
  assert.equal(calls.length, 0);
  source.close();
});

test("getToken is asked before every connect, and again on a 401", async () => {
  let issued = 0;
  let valid = "t1";
  install({
    routes: {
      "/a/recover": (url) => {
        const token = new URL(url, "http://test").searchParams.get("token");
        return token === valid ? active() : { status: 401, body: { error: "invalid_stream_token" } };
      },
    },
  });
  const source = new ResilientEventSource(URL_A, { ...fast, getToken: async () => `t${++issued}` });
  await until(() => FakeEventSource.all.length === 1);
  assert.equal(FakeEventSource.all[0].params.get("token"), "t2"); // recover t1, connect t2
  valid = "t5";
  FakeEventSource.all[0].fail(); // no cursor: recover (t3: 401, t4: 401) -> error? no: asks once more
  await until(() => source.status !== "reconnecting" || FakeEventSource.all.length > 1);
  // t3 refused, t4 refused: gives up (a token source that keeps failing).
  await until(() => source.status === "error");
  assert.equal(issued, 4);
});

test("token-expiring: a fresh token and an immediate reconnect by the cursor", async () => {
  let issued = 0;
  install({ routes: { "/a/recover": active } });
  const source = new ResilientEventSource(URL_A, { ...fast, baseDelayMs: 60000, getToken: () => `t${++issued}` });
  await until(() => FakeEventSource.all.length === 1);
  const first = FakeEventSource.all[0];
  first.open();
  first.send({ type: "connected" });
  first.send({ type: "token", data: "x" }, "4-0");
  first.send({ type: "token-expiring", expiresInMs: 30000 }, "4-0");
  await until(() => FakeEventSource.all.length === 2);
  assert.ok(first.closed);
  const second = FakeEventSource.all[1];
  assert.equal(second.params.get("lastEventId"), "4-0");
  assert.equal(second.params.get("token"), `t${issued}`);
  source.close();
});

test("coming back online reconnects at once instead of waiting out the backoff", async () => {
  const win = new EventTarget();
  globalThis.window = win;
  globalThis.document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  try {
    install({ routes: { "/a/recover": active } });
    const source = new ResilientEventSource(URL_A, { ...fast, baseDelayMs: 60000, maxDelayMs: 60000, random: () => 1 });
    await until(() => FakeEventSource.all.length === 1);
    FakeEventSource.all[0].open();
    FakeEventSource.all[0].send({ type: "token", data: 1 }, "1-0");
    FakeEventSource.all[0].fail();
    assert.equal(source.status, "reconnecting");
    await tick(20);
    assert.equal(FakeEventSource.all.length, 1); // a minute of backoff ahead
    win.dispatchEvent(new Event("online"));
    await until(() => FakeEventSource.all.length === 2);
    assert.equal(FakeEventSource.all[1].params.get("lastEventId"), "1-0");
    // A visible page whose connection went silent (throttled timers) reconnects too.
    FakeEventSource.all[1].open();
    await tick(5);
    globalThis.document.dispatchEvent(new Event("visibilitychange"));
    await tick(5);
    assert.equal(FakeEventSource.all.length, 2); // heard from it just now: left alone
    source.close();
  } finally {
    delete globalThis.window;
    delete globalThis.document;
  }
});

test("a connection refused before opening asks /recover for the status", async () => {
  let status = 200;
  install({ routes: { "/a/recover": () => (status === 200 ? active() : { status, body: {} }) } });
  const source = new ResilientEventSource(URL_A, { ...fast, lastEventId: "1-0" });
  await until(() => FakeEventSource.all.length === 1);
  status = 404;
  FakeEventSource.all[0].fail();
  await until(() => source.status === "error");
});

test("the attempt budget ends a source that can never connect", async () => {
  install({ routes: { "/a/recover": () => ({ status: 503, body: {} }) } });
  const source = new ResilientEventSource(URL_A, { ...fast, maxAttempts: 3 });
  await until(() => source.status === "error");
  assert.equal(source.attempts, 3);
});

test("cancel posts to <stream>/cancel with the reason", async () => {
  const calls = install({
    routes: { "/a/recover": active, "/a/cancel": () => ({ status: 202, body: { status: "cancelling", streamId: "a" } }) },
  });
  const source = new ResilientEventSource(URL_A, fast);
  const answer = await source.cancel("enough");
  assert.equal(answer.status, "cancelling");
  const post = calls.find((c) => c.url.endsWith("/a/cancel"));
  assert.equal(post.init.method, "POST");
  assert.deepEqual(JSON.parse(post.init.body), { reason: "enough" });
  source.close();
});
