/**
 * A transport for the AI SDK's `useChat` (packages `ai` and `@ai-sdk/react`):
 *
 *   const transport = new SSEResilienceChatTransport({ api: "/generations" });
 *   const { messages, sendMessage, stop } = useChat({ id: chatId, transport, resume: true });
 *   // the Stop button: cancel on the server, then stop reading
 *   const onStop = () => { void transport.stop(chatId); void stop(); };
 *
 * `sendMessages` posts to the app's endpoint, which opens a stream keyed by
 * the chat id and answers `{"streamId", "token"?}`; the transport follows it
 * with a {@link ResilientEventSource} (so it rides out dropped connections
 * and worker restarts) and turns its events into UI message chunks: text from
 * each event (`token` events' `data.text` by default) becomes `text-delta`,
 * `completed` finishes, `failed` is an `error` chunk. The answer's message id
 * is its stream id, so every replay of it lands on the same message.
 * `reconnectToStream` (useChat's `resume`) finds the chat's running stream by
 * key after a reload and replays it from the start.
 *
 * An abort is a disconnect. useChat aborts the signal it hands over for its
 * `stop()`, and also when the component unmounts (its cleanup is the same
 * `chat.stop()`), under StrictMode's simulated unmount, when the chat id
 * changes (a route change), and when a resume supersedes another; nothing in
 * the SDK's contract tells these apart. So an abort only stops reading: the
 * generation goes on and stays resumable. Cancelling on the server is
 * {@link SSEResilienceChatTransport.stop}, which the app's Stop button calls.
 */

import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";

import { cancelStream, findKey, streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
import type { CancelAnswer, SourceOptions, StreamEvent } from "./types.js";
import { askToken, TERMINAL, withDefaults } from "./util.js";

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

/** A stream position before every event: the server replays the whole log after it, ended or not. */
const BEFORE_START = "0-0";

/** An answer: its stream, and the token the app's endpoint gave for it. */
interface Answer {
  streamId: string;
  token: string | null;
}

/** Sends of one chat whose POST has not answered yet, and a Stop asked meanwhile. */
interface Sending {
  count: number;
  stop: {
    reason: string | null;
    resolve: (answer: CancelAnswer | null) => void;
    reject: (error: unknown) => void;
    promise: Promise<CancelAnswer | null>;
  } | null;
}

/** A `ChatTransport` that streams answers through flask-sse-resilience. */
export class SSEResilienceChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** A resumed answer replays from its start: the SDK resets the message first. */
  readonly resumeStreamIsReplay = true;
  /** Each chat's latest answer this transport started or resumed, until it ends. */
  private readonly answers = new Map<string, Answer>();
  private readonly sending = new Map<string, Sending>();
  /** How to disconnect each answer followed now. */
  private readonly following = new Set<() => void>();

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
    const sending = this.sending.get(chatId) ?? { count: 0, stop: null };
    this.sending.set(chatId, sending);
    sending.count += 1;
    let answer: Answer | null = null;
    try {
      // Never aborted: an abort is a disconnect, and the answer this starts
      // must stay reachable (by id, for a Stop pressed meanwhile).
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
      const json = (await response.json()) as { streamId?: string; token?: string };
      if (!json.streamId) throw new Error(`${this.options.api} answered without a streamId`);
      answer = { streamId: json.streamId, token: json.token ?? null };
      this.answers.set(chatId, answer);
    } finally {
      sending.count -= 1;
      const stop = sending.stop;
      if (sending.count === 0) {
        this.sending.delete(chatId);
        // The Stop pressed while the endpoint was answering: cancel that answer now.
        if (stop) (answer ? this.cancel(chatId, answer, stop.reason) : Promise.resolve(null)).then(stop.resolve, stop.reject);
      }
    }
    return this.follow(chatId, answer, abortSignal);
  }

  async reconnectToStream(
    request: Parameters<ChatTransport<UI_MESSAGE>["reconnectToStream"]>[0],
  ): Promise<ReadableStream<UIMessageChunk> | null> {
    const { chatId, abortSignal } = request;
    if (abortSignal?.aborted) return null;
    const found = await findKey(this.prefix, chatId, this.options.source);
    // Superseded meanwhile (StrictMode's first mount, a second resume) or
    // unmounted: open nothing. An abort never cancels.
    if (abortSignal?.aborted) return null;
    if (!found || found.status !== "active") return null; // nothing running: the history has it
    const answer: Answer = { streamId: found.streamId, token: null };
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
  async stop(chatId: string, reason: string | null = "stopped"): Promise<CancelAnswer | null> {
    const sending = this.sending.get(chatId);
    if (sending) {
      if (!sending.stop) {
        let resolve!: (answer: CancelAnswer | null) => void;
        let reject!: (error: unknown) => void;
        const promise = new Promise<CancelAnswer | null>((yes, no) => {
          resolve = yes;
          reject = no;
        });
        sending.stop = { reason, resolve, reject, promise };
      }
      return sending.stop.promise;
    }
    const known = this.answers.get(chatId);
    let answer: CancelAnswer | null = null;
    if (known) {
      answer = await this.cancel(chatId, known, reason);
      if (answer.status === "cancelling" || answer.status === "cancelled") return answer;
    }
    // Nothing known, or it had ended: the chat's running answer, if any.
    const found = await findKey(this.prefix, chatId, this.options.source);
    if (!found || found.status !== "active" || found.streamId === known?.streamId) return answer;
    return this.cancel(chatId, { streamId: found.streamId, token: null }, reason);
  }

  /**
   * Disconnect every answer this transport follows (`AbstractChat.dispose()`
   * calls it; useChat does not). Like an abort, it never cancels.
   */
  close(): void {
    for (const disconnect of [...this.following]) disconnect();
  }

  private async cancel(chatId: string, answer: Answer, reason: string | null): Promise<CancelAnswer> {
    const options = withDefaults(this.options.source);
    const token = answer.token ?? (await askToken(options).catch(() => options.token));
    const credentials = options.withCredentials ? "include" : "same-origin";
    const result = await cancelStream(streamUrl(this.prefix, answer.streamId), token, credentials, reason);
    if (this.answers.get(chatId)?.streamId === answer.streamId && result.status !== "cancelling") {
      this.answers.delete(chatId); // ended
    }
    return result;
  }

  /** The answer as UI message chunks, from its first event. An abort of `signal` disconnects. */
  private follow(chatId: string, answer: Answer, signal: AbortSignal | undefined): ReadableStream<UIMessageChunk> {
    const { streamId, token } = answer;
    const textOf = this.options.textOf ?? tokenText;
    const textId = "text-" + streamId;
    const url = streamUrl(this.prefix, streamId);
    let source: ResilientEventSource | null = null;
    let done = false;
    const release = (): void => {
      this.following.delete(disconnect);
      signal?.removeEventListener("abort", disconnect);
      source?.close();
      source = null;
    };
    let close = (): void => undefined;
    // Whatever aborted (useChat's stop(), an unmount, StrictMode, a route
    // change, a superseding resume): stop reading, cancel nothing.
    const disconnect = (): void => {
      if (done) return;
      done = true;
      release();
      close();
    };
    return new ReadableStream<UIMessageChunk>({
      start: (controller) => {
        close = () => {
          try {
            controller.close();
          } catch {
            // the reader cancelled the stream already
          }
        };
        if (signal?.aborted) return disconnect();
        this.following.add(disconnect);
        signal?.addEventListener("abort", disconnect);
        const end = (...chunks: UIMessageChunk[]): void => {
          if (done) return;
          done = true;
          for (const chunk of chunks) controller.enqueue(chunk);
          release();
          controller.close();
          if (this.answers.get(chatId)?.streamId === streamId) this.answers.delete(chatId);
        };
        // The stream id is the message id: a replay of this answer (a resume,
        // a remount) replaces its message instead of adding a second one.
        controller.enqueue({ type: "start", messageId: streamId });
        controller.enqueue({ type: "text-start", id: textId });
        let received = false;
        const open = (from: string | null): void => {
          const opened = new ResilientEventSource(url, {
            ...this.options.source,
            ...(token ? { token } : {}),
            from: "start",
            lastEventId: from,
            persist: false,
            multiplex: false,
          });
          source = opened;
          opened.onevent = (event) => {
            if (source !== opened) return;
            const first = !received;
            received = true;
            if (first && TERMINAL[event.type] && from === null) {
              // The stream ended before this source reached it, and an ended
              // stream answers a client without a position with its end
              // alone (a resume racing the answer's last events): replay
              // its log from before the first event instead.
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
      cancel: () => disconnect(),
    });
  }
}
