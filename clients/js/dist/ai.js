// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { cancelStream, findKey, streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
import { askToken, TERMINAL, withDefaults } from "./util.js";
function tokenText(event) {
  if (event.type !== "token") return null;
  const data = event.data;
  if (typeof data === "string") return data;
  return data && typeof data.text === "string" ? data.text : null;
}
function lastUserText(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role !== "user") continue;
    return message.parts.map((part) => part.type === "text" ? part.text : "").join("");
  }
  return "";
}
const BEFORE_START = "0-0";
class SSEResilienceChatTransport {
  constructor(options) {
    this.options = options;
    /** A resumed answer replays from its start: the SDK resets the message first. */
    this.resumeStreamIsReplay = true;
    /** Each chat's latest answer this transport started or resumed, until it ends. */
    this.answers = /* @__PURE__ */ new Map();
    this.sending = /* @__PURE__ */ new Map();
    /** How to disconnect each answer followed now. */
    this.following = /* @__PURE__ */ new Set();
  }
  get prefix() {
    return this.options.prefix ?? "/sse";
  }
  async sendMessages(request) {
    const { chatId, messages, trigger, messageId, abortSignal } = request;
    const base = this.options.body ? this.options.body({ chatId, messages, trigger, ...messageId ? { messageId } : {} }) : { key: chatId, prompt: lastUserText(messages), on_conflict: "cancel", trigger };
    const headers = new Headers(request.headers);
    headers.set("Content-Type", "application/json");
    for (const [name, value] of Object.entries(this.options.headers ?? {})) headers.set(name, value);
    const sending = this.sending.get(chatId) ?? { count: 0, stop: null };
    this.sending.set(chatId, sending);
    sending.count += 1;
    let answer = null;
    try {
      const response = await fetch(this.options.api, {
        method: "POST",
        credentials: "same-origin",
        headers,
        body: JSON.stringify({ ...base, ...request.body ?? {} })
      });
      if (!response.ok) {
        const text = await response.text().catch(() => "");
        throw new Error(`${this.options.api} answered ${response.status}: ${text}`);
      }
      const json = await response.json();
      if (!json.streamId) throw new Error(`${this.options.api} answered without a streamId`);
      answer = { streamId: json.streamId, token: json.token ?? null };
      this.answers.set(chatId, answer);
    } finally {
      sending.count -= 1;
      const stop = sending.stop;
      if (sending.count === 0) {
        this.sending.delete(chatId);
        if (stop) (answer ? this.cancel(chatId, answer, stop.reason) : Promise.resolve(null)).then(stop.resolve, stop.reject);
      }
    }
    return this.follow(chatId, answer, abortSignal);
  }
  async reconnectToStream(request) {
    const { chatId, abortSignal } = request;
    if (abortSignal?.aborted) return null;
    const found = await findKey(this.prefix, chatId, this.options.source);
    if (abortSignal?.aborted) return null;
    if (!found || found.status !== "active") return null;
    const answer = { streamId: found.streamId, token: null };
    this.answers.set(chatId, answer);
    return this.follow(chatId, answer, abortSignal);
  }
  /**
   * Cancel the chat's answer on the server: the app's Stop button calls this
   * (besides useChat's `stop()`, which only stops reading). It cancels the
   * answer this transport follows for `chatId`; one whose start is still
   * being answered by the app's endpoint, as soon as its id is known; else
   * the chat's running answer found by key (one another tab started, say).
   * Every follower then receives `cancelled` and finishes.
   *
   * Resolves to the server's answer (see {@link ResilientEventSource.cancel}),
   * or null when the chat has no running answer; rejects when the server
   * refuses or the network fails.
   */
  async stop(chatId, reason = "stopped") {
    const sending = this.sending.get(chatId);
    if (sending) {
      if (!sending.stop) {
        let resolve;
        let reject;
        const promise = new Promise((yes, no) => {
          resolve = yes;
          reject = no;
        });
        sending.stop = { reason, resolve, reject, promise };
      }
      return sending.stop.promise;
    }
    const known = this.answers.get(chatId);
    let answer = null;
    if (known) {
      answer = await this.cancel(chatId, known, reason);
      if (answer.status === "cancelling" || answer.status === "cancelled") return answer;
    }
    const found = await findKey(this.prefix, chatId, this.options.source);
    if (!found || found.status !== "active" || found.streamId === known?.streamId) return answer;
    return this.cancel(chatId, { streamId: found.streamId, token: null }, reason);
  }
  /**
   * Disconnect every answer this transport follows (`AbstractChat.dispose()`
   * calls it; useChat does not). Like an abort, it never cancels.
   */
  close() {
    for (const disconnect of [...this.following]) disconnect();
  }
  async cancel(chatId, answer, reason) {
    const options = withDefaults(this.options.source);
    const token = answer.token ?? await askToken(options).catch(() => options.token);
    const credentials = options.withCredentials ? "include" : "same-origin";
    const result = await cancelStream(streamUrl(this.prefix, answer.streamId), token, credentials, reason);
    if (this.answers.get(chatId)?.streamId === answer.streamId && result.status !== "cancelling") {
      this.answers.delete(chatId);
    }
    return result;
  }
  /** The answer as UI message chunks, from its first event. An abort of `signal` disconnects. */
  follow(chatId, answer, signal) {
    const { streamId, token } = answer;
    const textOf = this.options.textOf ?? tokenText;
    const textId = "text-" + streamId;
    const url = streamUrl(this.prefix, streamId);
    let source = null;
    let done = false;
    const release = () => {
      this.following.delete(disconnect);
      signal?.removeEventListener("abort", disconnect);
      source?.close();
      source = null;
    };
    let close = () => void 0;
    const disconnect = () => {
      if (done) return;
      done = true;
      release();
      close();
    };
    return new ReadableStream({
      start: (controller) => {
        close = () => {
          try {
            controller.close();
          } catch {
          }
        };
        if (signal?.aborted) return disconnect();
        this.following.add(disconnect);
        signal?.addEventListener("abort", disconnect);
        const end = (...chunks) => {
          if (done) return;
          done = true;
          for (const chunk of chunks) controller.enqueue(chunk);
          release();
          controller.close();
          if (this.answers.get(chatId)?.streamId === streamId) this.answers.delete(chatId);
        };
        controller.enqueue({ type: "start", messageId: streamId });
        controller.enqueue({ type: "text-start", id: textId });
        let received = false;
        const open = (from) => {
          const opened = new ResilientEventSource(url, {
            ...this.options.source,
            ...token ? { token } : {},
            from: "start",
            lastEventId: from,
            persist: false,
            multiplex: false
          });
          source = opened;
          opened.onevent = (event) => {
            if (source !== opened) return;
            const first = !received;
            received = true;
            if (first && TERMINAL[event.type] && from === null) {
              opened.close();
              received = false;
              return open(BEFORE_START);
            }
            const text = textOf(event);
            if (text) controller.enqueue({ type: "text-delta", id: textId, delta: text });
            if (event.type === "completed") end({ type: "text-end", id: textId }, { type: "finish", finishReason: "stop" });
            else if (event.type === "cancelled") end({ type: "text-end", id: textId }, { type: "finish", finishReason: "other" });
            else if (TERMINAL[event.type]) end({ type: "error", errorText: JSON.stringify(event.data) });
          };
          opened.onstatus = (status) => {
            if (source === opened && status === "error") end({ type: "error", errorText: "the answer's stream could not be followed" });
          };
        };
        open(null);
      },
      cancel: () => disconnect()
    });
  }
}
export {
  SSEResilienceChatTransport,
  tokenText
};
