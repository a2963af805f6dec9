/**
 * A transport for the AI SDK's `useChat` (packages `ai` and `@ai-sdk/react`):
 *
 *   const transport = new SSEResilienceChatTransport({ api: "/generations" });
 *   const chat = useChat({ id: chatId, transport, resume: true });
 *
 * `sendMessages` posts to the app's endpoint, which opens a stream keyed by
 * the chat id and answers `{"streamId", "token"?}`; the transport follows it
 * with a {@link ResilientEventSource} (so it rides out dropped connections
 * and worker restarts) and turns its events into UI message chunks: text from
 * each event (`token` events' `data.text` by default) becomes `text-delta`,
 * `completed` finishes, `failed` is an `error` chunk. `reconnectToStream`
 * (useChat's `resume`) finds the chat's running stream by key after a reload
 * and replays it from the start. `stop()` cancels the stream on the server;
 * disposing the chat (unmount) only disconnects.
 */

import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";

import { streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
import type { SourceOptions, StreamEvent } from "./types.js";

/** What the transport sends to the app's endpoint, unless `body` says otherwise. */
export interface ChatRequestBody {
  /** The chat id: the stream's key, so a reload finds the running answer. */
  key: string;
  /** The text of the last user message. */
  prompt: string;
  /** A new message replaces the chat's running answer. */
  on_conflict: "cancel";
  trigger: "submit-message" | "regenerate-message";
  messageId?: string;
}

/** Options of {@link SSEResilienceChatTransport}. */
export interface ChatTransportOptions<UI_MESSAGE extends UIMessage = UIMessage> {
  /** The app's endpoint that starts an answer: POST JSON, answers `{"streamId", "token"?}`. */
  api: string;
  /** The blueprint's URL prefix ("/sse"). */
  prefix?: string;
  /** Build the request body (merged with useChat's `body` option). */
  body?: (request: { chatId: string; messages: UI_MESSAGE[]; trigger: ChatRequestBody["trigger"]; messageId?: string }) => object;
  /** The text an event adds to the answer, or null for none (default: `token` events' `data.text`). */
  textOf?: (event: StreamEvent) => string | null;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Options of the sources that follow the answers (backoff, getToken, ...). */
  source?: SourceOptions;
}

/** The default {@link ChatTransportOptions.textOf}. */
export function tokenText(event: StreamEvent): string | null {
  if (event.type !== "token") return null;
  const data = event.data as { text?: unknown } | string | null;
  if (typeof data === "string") return data;
  return data && typeof data.text === "string" ? data.text : null;
}

function lastUserText(messages: UIMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role !== "user") continue;
    return message.parts.map((part) => (part.type === "text" ? part.text : "")).join("");
  }
  return "";
}

/** A `ChatTransport` that streams answers through flask-sse-resilience. */
export class SSEResilienceChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** A resumed answer replays from its start: the SDK resets the message first. */
  readonly resumeStreamIsReplay = true;
  private closed = false;

  constructor(private readonly options: ChatTransportOptions<UI_MESSAGE>) {}

  private get prefix(): string {
    return this.options.prefix ?? "/sse";
  }

  async sendMessages(
    request: Parameters<ChatTransport<UI_MESSAGE>["sendMessages"]>[0],
  ): Promise<ReadableStream<UIMessageChunk>> {
    const { chatId, messages, trigger, messageId, abortSignal } = request;
    const base = this.options.body
      ? this.options.body({ chatId, messages, trigger, ...(messageId ? { messageId } : {}) })
      : ({ key: chatId, prompt: lastUserText(messages), on_conflict: "cancel", trigger } satisfies ChatRequestBody);
    const headers = new Headers(request.headers);
    headers.set("Content-Type", "application/json");
    for (const [name, value] of Object.entries(this.options.headers ?? {})) headers.set(name, value);
    // Not aborted mid-request: a stop() then would leave a started answer
    // running with no id to cancel it by. It is cancelled once known instead.
    const response = await fetch(this.options.api, {
      method: "POST",
      credentials: "same-origin",
      headers,
      body: JSON.stringify({ ...base, ...(request.body ?? {}) }),
    });
    if (!response.ok) {
      const text = await response.text().catch(() => "");
      throw new Error(`${this.options.api} answered ${response.status}: ${text}`);
    }
    const answer = (await response.json()) as { streamId?: string; token?: string };
    if (!answer.streamId) throw new Error(`${this.options.api} answered without a streamId`);
    return this.follow(answer.streamId, answer.token ?? null, abortSignal);
  }

  async reconnectToStream(
    request: Parameters<ChatTransport<UI_MESSAGE>["reconnectToStream"]>[0],
  ): Promise<ReadableStream<UIMessageChunk> | null> {
    const found = await ResilientEventSource.findKey(this.prefix, request.chatId, this.options.source);
    if (!found || found.status !== "active") return null; // nothing running: the history has it
    return this.follow(found.streamId, null, request.abortSignal);
  }

  /** Stop using the transport: aborts from now on only disconnect. */
  close(): void {
    this.closed = true;
  }

  /** The answer `streamId` as UI message chunks, from its first event. */
  private follow(streamId: string, token: string | null, signal: AbortSignal | undefined): ReadableStream<UIMessageChunk> {
    const textOf = this.options.textOf ?? tokenText;
    const textId = "text-" + streamId;
    let source: ResilientEventSource | null = null;
    return new ReadableStream<UIMessageChunk>({
      start: (controller) => {
        let done = false;
        const end = (...chunks: UIMessageChunk[]): void => {
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
          ...(token ? { token } : {}),
          from: "start",
          multiplex: false,
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
        const stop = (): void => {
          if (done) return;
          const stopping = source;
          end({ type: "text-end", id: textId });
          // useChat's stop() aborts, and so does dispose() just before close():
          // cancel on the server only if no close() follows in this task.
          setTimeout(() => {
            if (!this.closed) void stopping?.cancel("stopped").catch(() => undefined);
          }, 0);
        };
        if (signal?.aborted) stop();
        else signal?.addEventListener("abort", stop);
      },
      cancel: () => {
        source?.close();
      },
    });
  }
}
