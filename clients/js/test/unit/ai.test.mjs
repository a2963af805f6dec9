// The AI SDK transport's side of the contract with a fake EventSource and
// fetch: the chunks it makes, an abort is a disconnect (useChat aborts for its
// stop(), an unmount, StrictMode's simulated unmount, a route change and a
// superseded resume alike), and only stop(chatId) cancels. The real useChat
// drives it in Chromium: tests/browser/test_ai_sdk.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SSEResilienceChatTransport, tokenText } from "../../dist/ai.js";
import { FakeEventSource, install, tick, until } from "./fakes.mjs";

const active = (id) => () => ({ status: 200, body: { status: "active", streamId: id } });
const user = { id: "m1", role: "user", parts: [{ type: "text", text: "hello there" }] };
let prefixes = 0;

function setUp(routes) {
  const prefix = `/p${++prefixes}`;
  const calls = install({ routes });
  const transport = new SSEResilienceChatTransport({ api: "/generations", prefix });
  return { prefix, calls, transport };
}

function send(transport, abortSignal, chatId = "c") {
  return transport.sendMessages({ trigger: "submit-message", chatId, messageId: undefined, messages: [user], abortSignal });
}

async function read(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

const cancels = (calls) => calls.filter((c) => c.url.includes("/cancel"));

test("token events become text deltas", () => {
  assert.equal(tokenText({ id: "1-0", type: "token", data: { text: "hi " } }), "hi ");
  assert.equal(tokenText({ id: "1-0", type: "token", data: "raw" }), "raw");
  assert.equal(tokenText({ id: "1-0", type: "progress", data: { text: "no" } }), null);
});

test("the transport posts to the app, then streams the answer as UI message chunks, its id the stream's", async () => {
  const { calls, transport } = setUp({
    "/generations": () => ({ status: 201, body: { streamId: "s1" } }),
    "/recover": active("s1"),
  });
  const stream = await transport.sendMessages({
    trigger: "submit-message",
    chatId: "chat-1",
    messageId: undefined,
    messages: [user],
    abortSignal: undefined,
    body: { tokens: 3 },
  });
  const sent = JSON.parse(calls[0].init.body);
  assert.deepEqual(sent, { key: "chat-1", prompt: "hello there", on_conflict: "cancel", trigger: "submit-message", tokens: 3 });
  assert.equal(calls[0].init.signal, undefined, "the start is never aborted");
  await until(() => FakeEventSource.open().length === 1);
  const source = FakeEventSource.open()[0];
  assert.equal(source.params.get("from"), "start");
  source.send({ type: "connected" });
  source.send({ type: "token", data: { text: "Hel" } }, "1-0");
  source.send({ type: "token", data: { text: "lo" } }, "2-0");
  source.send({ type: "completed", data: { text: "Hello" } }, "3-0");
  const chunks = await read(stream);
  assert.deepEqual(chunks[0], { type: "start", messageId: "s1" }); // a replay lands on the same message
  assert.deepEqual(
    chunks.map((c) => c.type + (c.delta ? ":" + c.delta : "")),
    ["start", "text-start", "text-delta:Hel", "text-delta:lo", "text-end", "finish"],
  );
});

test("an abort only disconnects: no cancel, whatever aborted, and close() neither", async () => {
  const { calls, transport } = setUp({
    "/generations": () => ({ status: 201, body: { streamId: "s2" } }),
    "/recover": active("s2"),
    "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
  });
  // useChat aborts the same way for its stop(), an unmount (its cleanup is
  // chat.stop()), StrictMode's simulated unmount and a route change.
  const abort = new AbortController();
  const stream = await send(transport, abort.signal);
  await until(() => FakeEventSource.open().length === 1);
  const source = FakeEventSource.open()[0];
  source.send({ type: "token", data: { text: "Hel" } }, "1-0");
  abort.abort();
  assert.ok(source.closed, "it stops reading at once");
  assert.deepEqual((await read(stream)).map((c) => c.type), ["start", "text-start", "text-delta"]);
  // AbstractChat.dispose() calls close() after its stop(): a disconnect too.
  const other = await send(transport, undefined);
  await until(() => FakeEventSource.open().length === 1);
  transport.close();
  assert.equal(FakeEventSource.open().length, 0);
  await read(other);
  await tick(20);
  assert.deepEqual(cancels(calls), []);
});

test("an abort while the app's endpoint is answering opens nothing and cancels nothing", async () => {
  const { calls, transport } = setUp({
    "/generations": () => ({ status: 201, body: { streamId: "s3" } }),
    "/recover": active("s3"),
    "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
  });
  const abort = new AbortController();
  const pending = send(transport, abort.signal);
  abort.abort(); // before the POST answered: the answer it starts goes on
  assert.deepEqual(await read(await pending), []);
  await tick(20);
  assert.equal(FakeEventSource.all.length, 0);
  assert.deepEqual(cancels(calls), []);
});

test("a resume aborted during its key lookup (StrictMode's first mount, a superseded resume) opens nothing", async () => {
  const { calls, transport } = setUp({
    "/keys/c": active("s4"),
    "/recover": active("s4"),
    "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
  });
  const first = new AbortController();
  const lookup = transport.reconnectToStream({ chatId: "c", abortSignal: first.signal });
  first.abort();
  assert.equal(await lookup, null);
  const second = await transport.reconnectToStream({ chatId: "c", abortSignal: new AbortController().signal });
  assert.ok(second, "the second resume follows the answer");
  await until(() => FakeEventSource.open().length === 1);
  await tick(20);
  assert.equal(FakeEventSource.all.length, 1);
  assert.deepEqual(cancels(calls), []);
  transport.close();
});

test("a resume aborted while following disconnects, and cancels nothing", async () => {
  const { calls, transport } = setUp({
    "/keys/c": active("s5"),
    "/recover": active("s5"),
    "/cancel": () => ({ status: 202, body: { status: "cancelling" } }),
  });
  const abort = new AbortController();
  const stream = await transport.reconnectToStream({ chatId: "c", abortSignal: abort.signal });
  await until(() => FakeEventSource.open().length === 1);
  abort.abort();
  await read(stream);
  await tick(20);
  assert.equal(FakeEventSource.open().length, 0);
  assert.deepEqual(cancels(calls), []);
});

test("stop(chatId) cancels the chat's answer on the server, with the endpoint's token", async () => {
  const { calls, transport } = setUp({
    "/generations": () => ({ status: 201, body: { streamId: "s6", token: "tok" } }),
    "/recover": active("s6"),
    "/cancel": () => ({ status: 202, body: { streamId: "s6", status: "cancelling" } }),
  });
  const stream = await send(transport, undefined);
  await until(() => FakeEventSource.open().length === 1);
  FakeEventSource.open()[0].send({ type: "token", data: { text: "Hel" } }, "1-0");
  assert.deepEqual(await transport.stop("c"), { streamId: "s6", status: "cancelling" });
  const [cancel] = cancels(calls);
  assert.match(cancel.url, /\/streams\/s6\/cancel\?token=tok$/);
  assert.deepEqual(JSON.parse(cancel.init.body), { reason: "stopped" });
  // Every follower, this one included, then receives the end.
  FakeEventSource.open()[0].send({ type: "cancelled", data: { by: "user" } }, "9-0");
  assert.deepEqual((await read(stream)).map((c) => c.type).slice(-2), ["text-end", "finish"]);
});

test("stop(chatId) while the app's endpoint is answering cancels the answer once its id is known", async () => {
  let answer;
  const answered = new Promise((resolve) => (answer = resolve));
  const { prefix, calls } = setUp({
    "/recover": active("s7"),
    "/cancel": () => ({ status: 202, body: { streamId: "s7", status: "cancelling" } }),
  });
  const transport = new SSEResilienceChatTransport({ api: "/generations", prefix });
  const plain = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    if (!String(url).endsWith("/generations")) return plain(url, init);
    await answered;
    return { status: 201, ok: true, json: async () => ({ streamId: "s7" }) };
  };
  const abort = new AbortController();
  const pending = send(transport, abort.signal);
  const stopped = transport.stop("c", "stop button");
  abort.abort(); // the Stop button's useChat stop(), right after
  await tick(10);
  assert.deepEqual(cancels(calls), []);
  answer();
  assert.deepEqual(await stopped, { streamId: "s7", status: "cancelling" });
  assert.deepEqual(cancels(calls).map((c) => [c.url, JSON.parse(c.init.body)]), [[`${prefix}/streams/s7/cancel`, { reason: "stop button" }]]);
  assert.deepEqual(await read(await pending), []);
});

test("stop(chatId) with no answer followed cancels the chat's running one by key, or answers null", async () => {
  let running = true;
  const { prefix, calls, transport } = setUp({
    "/keys/c": () => (running ? active("s8")() : { status: 204, body: null }),
    "/cancel": () => ({ status: 202, body: { streamId: "s8", status: "cancelling" } }),
  });
  assert.deepEqual(await transport.stop("c"), { streamId: "s8", status: "cancelling" });
  assert.deepEqual(cancels(calls).map((c) => c.url), [`${prefix}/streams/s8/cancel`]);
  running = false;
  assert.equal(await transport.stop("c"), null);
  assert.equal(cancels(calls).length, 1);
});

test("a stream that ended before it was followed replays its whole log, not its end alone", async () => {
  // The resume found it running; it ended before the source asked /recover.
  // (Any answer whose first event is its end replays so: one request more
  // for an answer that ended before its first token.)
  const { transport } = setUp({
    "/keys/c": active("s9"),
    "/recover": () => ({
      status: 200,
      body: { status: "completed", streamId: "s9", terminalEventType: "completed", terminalEventData: { text: "Hello" }, eventId: "3-0" },
    }),
  });
  const stream = await transport.reconnectToStream({ chatId: "c", abortSignal: new AbortController().signal });
  await until(() => FakeEventSource.open().length === 1);
  const replay = FakeEventSource.open()[0];
  assert.equal(replay.params.get("lastEventId"), "0-0"); // before its first event
  replay.send({ type: "token", data: { text: "Hel" } }, "1-0");
  replay.send({ type: "token", data: { text: "lo" } }, "2-0");
  replay.send({ type: "completed", data: { text: "Hello" } }, "3-0");
  assert.deepEqual(
    (await read(stream)).map((c) => c.type + (c.delta ? ":" + c.delta : "")),
    ["start", "text-start", "text-delta:Hel", "text-delta:lo", "text-end", "finish"],
  );
});
