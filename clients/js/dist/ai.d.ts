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
    private closed;
    constructor(options: ChatTransportOptions<UI_MESSAGE>);
    private get prefix();
    sendMessages(request: Parameters<ChatTransport<UI_MESSAGE>["sendMessages"]>[0]): Promise<ReadableStream<UIMessageChunk>>;
    reconnectToStream(request: Parameters<ChatTransport<UI_MESSAGE>["reconnectToStream"]>[0]): Promise<ReadableStream<UIMessageChunk> | null>;
    /** Stop using the transport: aborts from now on only disconnect. */
    close(): void;
    /** The answer `streamId` as UI message chunks, from its first event. */
    private follow;
}
