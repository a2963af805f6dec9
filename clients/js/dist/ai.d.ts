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
import type { CancelAnswer, SourceOptions, StreamEvent } from "./types.js";
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
    body?: (request: {
        chatId: string;
        messages: UI_MESSAGE[];
        trigger: ChatRequestBody["trigger"];
        messageId?: string;
    }) => object;
    /** The text an event adds to the answer, or null for none (default: `token` events' `data.text`). */
    textOf?: (event: StreamEvent) => string | null;
    /** Extra request headers. */
    headers?: Record<string, string>;
    /** Options of the sources that follow the answers (backoff, getToken, ...). */
    source?: SourceOptions;
}
/** The default {@link ChatTransportOptions.textOf}. */
export declare function tokenText(event: StreamEvent): string | null;
/** A `ChatTransport` that streams answers through flask-sse-resilience. */
export declare class SSEResilienceChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
    private readonly options;
    /** A resumed answer replays from its start: the SDK resets the message first. */
    readonly resumeStreamIsReplay = true;
    /** Each chat's latest answer this transport started or resumed, until it ends. */
    private readonly answers;
    private readonly sending;
    /** How to disconnect each answer followed now. */
    private readonly following;
    constructor(options: ChatTransportOptions<UI_MESSAGE>);
    private get prefix();
    sendMessages(request: Parameters<ChatTransport<UI_MESSAGE>["sendMessages"]>[0]): Promise<ReadableStream<UIMessageChunk>>;
    reconnectToStream(request: Parameters<ChatTransport<UI_MESSAGE>["reconnectToStream"]>[0]): Promise<ReadableStream<UIMessageChunk> | null>;
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
    stop(chatId: string, reason?: string | null): Promise<CancelAnswer | null>;
    /**
     * Disconnect every answer this transport follows (`AbstractChat.dispose()`
     * calls it; useChat does not). Like an abort, it never cancels.
     */
    close(): void;
    private cancel;
    /** The answer as UI message chunks, from its first event. An abort of `signal` disconnects. */
    private follow;
}
