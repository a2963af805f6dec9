// Many streams on one connection (GET <prefix>/multi), with a fake
// EventSource and fetch.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ResilientEventSource } from "../../dist/index.js";
import { FakeEventSource, install, until } from "./fakes.mjs";

const active = (id) => () => ({ status: 200, body: { status: "active", streamId: id } });
const fast = { baseDelayMs: 1, maxDelayMs: 2 };
let prefixes = 0;

beforeEach(() => install({ routes: { "/recover": active("x") } }));

function follow(prefix, id, options = {}) {
  const source = new ResilientEventSource(`${prefix}/streams/${id}`, { ...fast, ...options });
  source.events = [];
  source.onevent = (event) => source.events.push(event);
  return source;
}

test("two sources of a page share one multiplexed connection; events go to their own", async () => {
  const prefix = `/p${++prefixes}`;
  const a = follow(prefix, "a");
  const b = follow(prefix, "b", { lastEventId: "3-0" });
  await until(() => FakeEventSource.open().some((s) => s.url.includes("/multi")));
  const multi = FakeEventSource.open().filter((s) => s.url.includes("/multi"));
  assert.equal(multi.length, 1);
  assert.equal(FakeEventSource.open().length, 1, "the single connections closed");
  assert.equal(multi[0].params.get("streams"), "a,b");
  assert.equal(multi[0].params.get("lastEventId"), ",3-0");
  multi[0].open();
  multi[0].send({ type: "connected", streams: ["a", "b"], heartbeatMs: 1000 });
  assert.equal(a.status, "connected");
  multi[0].send({ type: "token", stream: "a", eventId: "1-0", data: "a1" }, "1-0,3-0");
  multi[0].send({ type: "token", stream: "b", eventId: "4-0", data: "b4" }, "1-0,4-0");
  assert.deepEqual(a.events.map((e) => e.data), ["a1"]);
  assert.deepEqual(b.events.map((e) => [e.id, e.data]), [["4-0", "b4"]]);
  // Dropped: the reconnect carries each stream's own position.
  multi[0].fail();
  await until(() => FakeEventSource.open().length === 1 && FakeEventSource.open()[0] !== multi[0]);
  const again = FakeEventSource.open()[0];
  assert.equal(again.params.get("lastEventId"), "1-0,4-0");
  // An event a source already has is not delivered twice.
  again.send({ type: "token", stream: "b", eventId: "4-0", data: "b4" }, "1-0,4-0");
  assert.equal(b.events.length, 1);
  // b ends; a alone goes back to a connection of its own, by its cursor.
  again.send({ type: "completed", stream: "b", eventId: "5-0", data: "end" }, "1-0,5-0");
  assert.equal(b.status, "completed");
  a.close();
  await until(() => FakeEventSource.open().length === 0);
});

test("a stream refused on the shared connection ends its source only", async () => {
  const prefix = `/p${++prefixes}`;
  const a = follow(prefix, "a");
  const b = follow(prefix, "b");
  await until(() => FakeEventSource.open().some((s) => s.url.includes("/multi")));
  const multi = FakeEventSource.open()[0];
  multi.send({ type: "connected", streams: ["a", "b"] });
  multi.send({ type: "error", stream: "b", data: { error: "stream_not_found", status: 404 } });
  assert.equal(b.status, "error");
  assert.equal(a.status, "connected");
  // a is alone now: on a connection of its own.
  await until(() => FakeEventSource.open().length === 1 && !FakeEventSource.open()[0].url.includes("/multi"));
  a.close();
});

test("multiplex: false keeps one connection per source", async () => {
  const prefix = `/p${++prefixes}`;
  const a = follow(prefix, "a", { multiplex: false });
  const b = follow(prefix, "b", { multiplex: false });
  await until(() => FakeEventSource.open().length === 2);
  assert.ok(FakeEventSource.open().every((s) => !s.url.includes("/multi")));
  a.close();
  b.close();
});

test("a stream that ends leaves the shared connection as it is", async () => {
  const prefix = `/p${++prefixes}`;
  const a = follow(prefix, "a");
  const b = follow(prefix, "b");
  const c = follow(prefix, "c");
  await until(() => FakeEventSource.open().some((s) => s.url.includes("/multi")));
  const multi = FakeEventSource.open()[0];
  multi.send({ type: "connected", streams: ["a", "b", "c"] });
  multi.send({ type: "completed", stream: "c", eventId: "1-0", data: "end" }, ",,1-0");
  assert.equal(c.status, "completed");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(FakeEventSource.open(), [multi]); // no reconnect for an end
  a.close(); // a page closing a source: the connection drops its stream
  await until(() => FakeEventSource.open().length === 1 && FakeEventSource.open()[0] !== multi);
  b.close();
});
