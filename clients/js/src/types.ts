/**
 * Public types of the flask-sse-resilience browser client. The wire format
 * they describe is the protocol page (docs/protocol.rst).
 */

/** One event of a stream, as delivered to `onevent`. */
export interface StreamEvent<T = unknown> {
  /** The event's id in its stream (null for `reset`, and for an end without one). */
  id: string | null;
  /** The producer's type (`token`, ...), or `snapshot`, `reset`, or a terminal type. */
  type: string;
  /** The event's data, parsed from JSON. */
  data: T;
  /** The stream it belongs to. */
  stream?: string;
}

/** Where a client stands. Terminal statuses end it for good. */
export type Status =
  | "connecting"
  | "connected"
  | "reconnecting"
  | "completed"
  | "failed"
  | "cancelled"
  | "error";

/** Without a cursor: start from the latest snapshot (server default), the whole log, or only what comes next. */
export type StartFrom = "snapshot" | "start" | "latest";

/** A token source: called before every (re)connect and once more on a 401. */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

/** Options of {@link ResilientEventSource}; every one is optional. */
export interface SourceOptions {
  /** First backoff ceiling, ms (500). */
  baseDelayMs?: number;
  /** Backoff ceiling cap, ms (15000). */
  maxDelayMs?: number;
  /** Reconnects in a row without a successful open before giving up (12). */
  maxAttempts?: number;
  /** Heartbeat expected until the server says otherwise in `connected`, ms (15000). */
  heartbeatMs?: number;
  /** Silence of this many heartbeats means a dead line (2.5). */
  watchdogFactor?: number;
  /** Remember the cursor in sessionStorage so a reload resumes too (false). */
  persist?: boolean;
  /** Send cookies cross-origin (needs the server's CORS allow-list) (false). */
  withCredentials?: boolean;
  /** A stream token from `sse.stream_token()`, for clients without the cookie. */
  token?: string | null;
  /** A token source, asked before every (re)connect: a stream outlives its token. */
  getToken?: TokenSource | null;
  /** Without a cursor, where to start (the server's default: "snapshot"). */
  from?: StartFrom | null;
  /** A cursor to start from, e.g. handed over by a server-rendered page. */
  lastEventId?: string | null;
  /**
   * Share one connection with this page's other sources of the same prefix
   * (`GET <prefix>/multi`): "auto" (default) does so once the page follows
   * two or more streams; false never.
   */
  multiplex?: "auto" | boolean;
  /** One connection for every tab of the origin (Web Locks + BroadcastChannel) (false). */
  shareAcrossTabs?: boolean;
  /** Source of randomness for the backoff (tests). */
  random?: () => number;
}

/** The recover JSON (`GET <stream>/recover`, `GET <prefix>/keys/<key>`). */
export interface RecoverInfo {
  status: "active" | "completed" | "failed" | "orphaned" | "cancelled" | "unknown";
  streamId: string;
  key?: string;
  terminalEventType?: string;
  terminalEventData?: unknown;
  completedAt?: string;
  eventId?: string;
}

/** The server's answer to a cancel request. */
export interface CancelAnswer {
  streamId?: string;
  status: string;
  [field: string]: unknown;
}
