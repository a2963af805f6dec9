/**
 * React hook over {@link ResilientEventSource}:
 *
 *   const { status, data, events, stop, cursor } = useResilientSSE(streamId);
 *   const { streamId } = useResilientSSE(null, { key: chatId }); // by key
 *
 * Several hooks of one page share one connection (`multiplex: "auto"`).
 * Options are compared by value (functions aside): a new token reconnects, a
 * new object with the same values does not. Unmounting disconnects; `stop()`
 * cancels the stream on the server.
 */
import type { CancelAnswer, SourceOptions, Status, StreamEvent } from "./types.js";
/** Options of {@link useResilientSSE}: a source's, plus where and what to follow. */
export interface UseResilientSSEOptions extends SourceOptions {
    /** The blueprint's URL prefix ("/sse"). */
    prefix?: string;
    /** Follow the signed-in user's latest stream of this key when no stream id is given. */
    key?: string;
}
/** What {@link useResilientSSE} returns. */
export interface ResilientSSEState<T = unknown> {
    /** The source's status, or "none" when the key has no stream. */
    status: Status | "none";
    /** The latest event's data (the result, once terminal). */
    data: T | null;
    /** Every event so far; emptied by `reset`, replaced by a `snapshot`. */
    events: StreamEvent<T>[];
    /** Cancel the stream on the server (resolves to null when none is followed). */
    stop: (reason?: string) => Promise<CancelAnswer | null>;
    /** The stream followed (found by key, or the one given). */
    streamId: string | null;
    /** The cursor: the last event id received. */
    cursor: string | null;
}
/** Follow `streamId` (or, if null, the latest stream of `options.key`) while mounted. */
export declare function useResilientSSE<T = unknown>(streamId: string | null, options?: UseResilientSSEOptions): ResilientSSEState<T>;
