// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
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
class SSEResilienceChatTransport {
  constructor(options) {
    this.options = options;
    /** A resumed answer replays from its start: the SDK resets the message first. */
    this.resumeStreamIsReplay = true;
    this.closed = false;
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
    const answer = await response.json();
    if (!answer.streamId) throw new Error(`${this.options.api} answered without a streamId`);
    return this.follow(answer.streamId, answer.token ?? null, abortSignal);
  }
  async reconnectToStream(request) {
    const found = await ResilientEventSource.findKey(this.prefix, request.chatId, this.options.source);
    if (!found || found.status !== "active") return null;
    return this.follow(found.streamId, null, request.abortSignal);
  }
  /** Stop using the transport: aborts from now on only disconnect. */
  close() {
    this.closed = true;
  }
  /** The answer `streamId` as UI message chunks, from its first event. */
  follow(streamId, token, signal) {
    const textOf = this.options.textOf ?? tokenText;
    const textId = "text-" + streamId;
    let source = null;
    return new ReadableStream({
      start: (controller) => {
        let done = false;
        const end = (...chunks) => {
          if (done) return;
          done = true;
          for (const chunk of chunks) controller.enqueue(chunk);
          source?.close();
          controller.close();
        };
        controller.enqueue({ type: "start" });
        controller.enqueue({ type: "text-start", id: textId });
        source = new ResilientEventSource(streamUrl(this.prefix, streamId), {
          ...this.options.source,
          ...token ? { token } : {},
          from: "start",
          multiplex: false
        });
        source.onevent = (event) => {
          const text = textOf(event);
          if (text) controller.enqueue({ type: "text-delta", id: textId, delta: text });
          if (event.type === "completed") end({ type: "text-end", id: textId }, { type: "finish", finishReason: "stop" });
          else if (event.type === "cancelled") end({ type: "text-end", id: textId }, { type: "finish", finishReason: "other" });
          else if (event.type === "failed") end({ type: "error", errorText: JSON.stringify(event.data) });
        };
        source.onstatus = (status) => {
          if (status === "error") end({ type: "error", errorText: "the answer's stream could not be followed" });
        };
        const stop = () => {
          if (done) return;
          const stopping = source;
          end({ type: "text-end", id: textId });
          setTimeout(() => {
            if (!this.closed) void stopping?.cancel("stopped").catch(() => void 0);
          }, 0);
        };
        if (signal?.aborted) stop();
        else signal?.addEventListener("abort", stop);
      },
      cancel: () => {
        source?.close();
      }
    });
  }
}
export {
  SSEResilienceChatTransport,
  tokenText
};
