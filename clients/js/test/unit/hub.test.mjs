// Many streams on one connection (GET <prefix>/multi), and the AI SDK
// transport's mapping, with a fake EventSource and fetch.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { ResilientEventSource } from "../../dist/index.js";
import { SSEResilienceChatTransport, tokenText } from "../../dist/ai.js";
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

test("token events become text deltas", () => {
  assert.equal(tokenText({ id: "1-0", type: "token", data: { text: "hi " } }), "hi ");
  assert.equal(tokenText({ id: "1-0", type: "token", data: "raw" }), "raw");
  assert.equal(tokenText({ id: "1-0", type: "progress", data: { text: "no" } }), null);
});

test("the chat transport posts to the app, then streams the answer as UI message chunks", async () => {
  const calls = install({
    routes: {
      "/generations": () => ({ status: 201, body: { streamId: "s1" } }),
      "/recover": active("s1"),
    },
  });
  const transport = new SSEResilienceChatTransport({ api: "/generations", prefix: `/p${++prefixes}` });
  const stream = await transport.sendMessages({
    trigger: "submit-message",
    chatId: "chat-1",
    messageId: undefined,
    messages: [{ id: "m1", role: "user", parts: [{ type: "text", text: "hello there" }] }],
    abortSignal: undefined,
    body: { tokens: 3 },
  });
  const sent = JSON.parse(calls[0].init.body);
  assert.deepEqual(sent, { key: "chat-1", prompt: "hello there", on_conflict: "cancel", trigger: "submit-message", tokens: 3 });
  await until(() => FakeEventSource.open().length === 1);
  const source = FakeEventSource.open()[0];
  assert.equal(source.params.get("from"), "start");
  source.send({ type: "connected" });
  source.send({ type: "token", data: { text: "Hel" } }, "1-0");
  source.send({ type: "token", data: { text: "lo" } }, "2-0");
  source.send({ type: "completed", data: { text: "Hello" } }, "3-0");
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.deepEqual(
    chunks.map((c) => c.type + (c.delta ? ":" + c.delta : "")),
    ["start", "text-start", "text-delta:Hel", "text-delta:lo", "text-end", "finish"],
  );
});

test("stop() (an abort) cancels the stream on the server; dispose (abort, then close) does not", async () => {
  const calls = install({
    routes: {
      "/generations": () => ({ status: 201, body: { streamId: "s2" } }),
      "/recover": active("s2"),
      "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
    },
  });
  const prefix = `/p${++prefixes}`;
  const message = { id: "m1", role: "user", parts: [{ type: "text", text: "hi" }] };
  for (const dispose of [false, true]) {
    const transport = new SSEResilienceChatTransport({ api: "/generations", prefix });
    const abort = new AbortController();
    const stream = await transport.sendMessages({
      trigger: "submit-message", chatId: "c", messageId: undefined, messages: [message], abortSignal: abort.signal,
    });
    await until(() => FakeEventSource.open().length === 1);
    abort.abort();
    if (dispose) transport.close();
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk.type);
    assert.deepEqual(chunks, ["start", "text-start", "text-end"]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const cancels = calls.filter((c) => c.url.includes("/cancel")).length;
    assert.equal(cancels, 1, dispose ? "dispose must not cancel" : "stop must cancel");
  }
});

test("stop() while the app's endpoint is still answering cancels the answer once its id is known", async () => {
  const calls = install({
    routes: {
      "/generations": () => ({ status: 201, body: { streamId: "s3" } }),
      "/recover": active("s3"),
      "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
    },
  });
  const transport = new SSEResilienceChatTransport({ api: "/generations", prefix: `/p${++prefixes}` });
  const abort = new AbortController();
  const pending = transport.sendMessages({
    trigger: "submit-message", chatId: "c", messageId: undefined,
    messages: [{ id: "m1", role: "user", parts: [{ type: "text", text: "hi" }] }], abortSignal: abort.signal,
  });
  abort.abort(); // before the POST answered
  const chunks = [];
  for await (const chunk of await pending) chunks.push(chunk.type);
  assert.deepEqual(chunks, ["start", "text-start", "text-end"]);
  await until(() => calls.some((c) => c.url.includes("/s3/cancel")));
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
