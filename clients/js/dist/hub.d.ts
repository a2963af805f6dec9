/**
 * One connection for many streams: a page's sources of one prefix share a
 * `GET <prefix>/multi` response (docs/protocol.rst, "Multiplexed responses").
 *
 * The hub carries its members on one EventSource once there are two or more
 * (or always, for tab sharing), reconnecting with backoff and the combined
 * cursor built from its members' own cursors, so nothing is lost or doubled
 * when members come and go or the connection drops.
 */
import type { Status } from "./types.js";
import { type Options } from "./util.js";
/** What the hub needs of a source it carries. */
export interface Member {
    readonly streamId: string | null;
    readonly lastEventId: string | null;
    readonly status: Status;
    readonly options: Options;
    /** Start (carrier) or stop (null) being carried; stopped, the member connects on its own. */
    _carry(carrier: Carrier | null): void;
    /** An event of the member's stream: the envelope with `eventId`. */
    _deliver(envelope: {
        type: string;
        data?: unknown;
        eventId?: string | null;
    }): void;
    /** The shared connection's state ("error": it gave up, or refused this stream). */
    _hubStatus(status: Status): void;
}
/** A hub or a tab share: whoever carries a member. */
export interface Carrier {
    readonly connected: boolean;
    /** The page woke up: reconnect now if the connection is down or silent. */
    wake(): void;
}
/** A page-level multiplexer of one prefix (see `hubFor` in hubs.ts). */
export type Hub = Carrier & {
    join(member: Member): void;
    leave(member: Member): void;
};
/** Carries members of one prefix on one multiplexed connection. */
export declare class MultiHub implements Carrier {
    readonly prefix: string;
    readonly always: boolean;
    readonly members: Set<Member>;
    connected: boolean;
    attempts: number;
    private _source;
    private _streams;
    private _planned;
    private _timer;
    private _watchdog;
    private _heartbeatMs;
    private _lastByteAt;
    private readonly _options;
    /**
     * @param prefix the blueprint's URL prefix (`/sse`).
     * @param always carry even a single member (tab sharing), else from two on.
     */
    constructor(prefix: string, options: Options, always?: boolean);
    /** Carry `member` (from the next planning step on). */
    join(member: Member): void;
    /** Stop carrying `member`. */
    leave(member: Member): void;
    wake(): void;
    /**
     * Decide whether to carry and on which streams, once per burst of joins
     * and leaves (a page opening ten chats reconnects once, not ten times).
     */
    private _plan;
    private _wanted;
    /** Each stream's position: the earliest of its members' cursors (members drop what they have). */
    private _cursor;
    private _tokens;
    private _stop;
    private _reconnect;
    private _connect;
    private _retry;
    private _arm;
    private _disarm;
}
