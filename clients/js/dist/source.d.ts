/**
 * ResilientEventSource: an EventSource that never loses the result.
 *
 * It follows the client algorithm of the protocol page (docs/protocol.rst):
 *  1. without a cursor, asks <url>/recover first: an ended stream delivers
 *     its terminal event and no connection opens;
 *  2. connects with EventSource and hands every event to `onevent`;
 *  3. on an error, or silence longer than 2.5 heartbeats (a half-open
 *     connection), reconnects with full-jitter backoff, resuming after the
 *     last event id it saw (the `lastEventId` query parameter: a new
 *     EventSource cannot set Last-Event-ID); at once when the page comes
 *     back online, visible or from the back-forward cache;
 *  4. stops on a terminal event, on 401/403/404 (learnt from /recover, since
 *     EventSource hides status codes), or when the attempt budget is spent;
 *  5. asks `getToken()` before every (re)connect, once more on a 401, and on
 *     the server's `token-expiring` event, reconnecting with the fresh token.
 *
 * With `multiplex` ("auto"), sources of one page on the same prefix share one
 * connection (`GET <prefix>/multi`) once there are two or more; with
 * `shareAcrossTabs`, every tab of the origin shares one.
 */
import type { Carrier, Member } from "./hub.js";
import { findKey } from "./requests.js";
import type { CancelAnswer, SourceOptions, Status, StreamEvent } from "./types.js";
import { type Options } from "./util.js";
interface Envelope {
    type: string;
    data?: unknown;
    heartbeatMs?: number;
    eventId?: string | null;
    stream?: string;
}
export declare class ResilientEventSource<T = unknown> implements Member {
    /** The stream's URL (`<prefix>/streams/<id>`). */
    readonly url: string;
    /** The options in force (defaults filled in). */
    readonly options: Options;
    /** The stream id, when the URL has the standard form. */
    readonly streamId: string | null;
    /** Where this source stands. */
    status: Status;
    /** The id of the last event received: the cursor to resume from. */
    lastEventId: string | null;
    /** Reconnects in a row without a successful open. */
    attempts: number;
    /** Called with every event (see {@link StreamEvent}). */
    onevent: ((event: StreamEvent<T>) => void) | null;
    /** Called whenever {@link status} changes. */
    onstatus: ((status: Status) => void) | null;
    private _source;
    private _timer;
    private _watchdog;
    private _closed;
    private _heartbeatMs;
    private _lastByteAt;
    private readonly _storageKey;
    private readonly _hub;
    private _carrier;
    private readonly _unwake;
    /**
     * Start following `url` at once (recover first, then connect).
     * @param url `<prefix>/streams/<id>` (another URL works alone, without multiplexing).
     */
    constructor(url: string, options?: SourceOptions);
    /** With `shareAcrossTabs`: whether this tab holds the shared connection ("leader") or not; else null. */
    get sharing(): "leader" | "follower" | null;
    /** The cursor: the id of the last event received (hand it to a new source to go on). */
    get cursor(): string | null;
    /** Disconnect this page (the stream goes on; see {@link cancel}). */
    close(): void;
    /**
     * Ask the server to stop this stream (close() only disconnects this page).
     * Resolves to the server's JSON: status "cancelling" (202), the recover JSON
     * of a stream that ended cancelled (200), or one that had ended otherwise
     * (409). Rejects on 401/403/404 and network errors. Every follower, this
     * one included, then receives the "cancelled" event.
     */
    cancel(reason?: string | null): Promise<CancelAnswer>;
    /** @internal The hub starts (a hub) or stops (null) carrying this source. */
    _carry(hub: Carrier | null): void;
    /** @internal An event for this stream from the hub. */
    _deliver(envelope: Envelope): void;
    /** @internal The hub's connection state changed. */
    _hubStatus(status: Status): void;
    private _credentials;
    private _setStatus;
    private _emit;
    private _finish;
    private _dropSource;
    private _event;
    /** Ask /recover (see {@link RecoverState}); deliver an ended stream's end if `deliver`. */
    private _recover;
    /** Recover, asking for a fresh token once on a 401. */
    private _recoverWithToken;
    private _start;
    private _connect;
    private _retry;
    /** Close the connection and connect again at once, by the cursor. */
    private _reconnectNow;
    /** The page came back (online, visible, pageshow): don't wait out a backoff or a throttled watchdog. */
    private _wake;
    private _arm;
    private _disarm;
    /** See {@link findKey}: the signed-in user's latest stream of `key`, or null. */
    static findKey: typeof findKey;
    /**
     * Follow the latest stream of `key`: requests, then recover (an ended stream
     * delivers its end at once), then follow. Resolves to the source, or null
     * when the key has no stream.
     */
    static openKey<T = unknown>(prefix: string, key: string, options?: SourceOptions): Promise<ResilientEventSource<T> | null>;
}
export {};
