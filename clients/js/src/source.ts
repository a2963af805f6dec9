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

import type { Carrier, Hub, Member } from "./hub.js";
import { hubFor } from "./hubs.js";
import { cancelStream, findKey, recover, streamUrl } from "./requests.js";
import { TabShare } from "./share.js";
import type { CancelAnswer, SourceOptions, Status, StreamEvent } from "./types.js";
import {
  askToken,
  backoffDelay,
  FATAL_STATUS,
  isAfter,
  onWakeUp,
  splitStreamUrl,
  storage,
  TERMINAL,
  withDefaults,
  withParams,
  type Options,
} from "./util.js";

type RecoverState = "ended" | "fatal" | "unauthorized" | "active" | "unknown" | `have-end:${string}`;

interface Envelope {
  type: string;
  data?: unknown;
  heartbeatMs?: number;
  eventId?: string | null;
  stream?: string;
}

export class ResilientEventSource<T = unknown> implements Member {
  /** The stream's URL (`<prefix>/streams/<id>`). */
  readonly url: string;
  /** The options in force (defaults filled in). */
  readonly options: Options;
  /** The stream id, when the URL has the standard form. */
  readonly streamId: string | null;
  /** Where this source stands. */
  status: Status = "connecting";
  /** The id of the last event received: the cursor to resume from. */
  lastEventId: string | null;
  /** Reconnects in a row without a successful open. */
  attempts = 0;
  /** Called with every event (see {@link StreamEvent}). */
  onevent: ((event: StreamEvent<T>) => void) | null = null;
  /** Called whenever {@link status} changes. */
  onstatus: ((status: Status) => void) | null = null;

  private _source: EventSource | null = null;
  private _timer: ReturnType<typeof setTimeout> | undefined;
  private _watchdog: ReturnType<typeof setTimeout> | undefined;
  private _closed = false;
  private _heartbeatMs: number;
  private _lastByteAt = 0;
  private readonly _storageKey: string;
  private readonly _hub: Hub | null;
  private _carrier: Carrier | null = null;
  private readonly _unwake: () => void;

  /**
   * Start following `url` at once (recover first, then connect).
   * @param url `<prefix>/streams/<id>` (another URL works alone, without multiplexing).
   */
  constructor(url: string, options?: SourceOptions) {
    this.url = url;
    this.options = withDefaults(options);
    const parts = splitStreamUrl(url);
    this.streamId = parts ? parts.streamId : null;
    this._heartbeatMs = this.options.heartbeatMs;
    this._storageKey = "sse-resilience:" + url;
    this.lastEventId = this.options.lastEventId;
    if (!this.lastEventId && this.options.persist) this.lastEventId = storage()?.getItem(this._storageKey) ?? null;
    const shares = this.options.multiplex !== false || this.options.shareAcrossTabs;
    this._hub = parts && shares ? hubFor(parts.prefix, this.options) : null;
    this._unwake = onWakeUp(() => this._wake());
    if (this._hub) this._hub.join(this);
    if (!this._carrier) void this._start();
  }

  /** With `shareAcrossTabs`: whether this tab holds the shared connection ("leader") or not; else null. */
  get sharing(): "leader" | "follower" | null {
    if (!(this._hub instanceof TabShare)) return null;
    return this._hub.leader ? "leader" : "follower";
  }

  /** The cursor: the id of the last event received (hand it to a new source to go on). */
  get cursor(): string | null {
    return this.lastEventId;
  }

  /** Disconnect this page (the stream goes on; see {@link cancel}). */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this._disarm();
    this._unwake();
    this._dropSource();
    this._hub?.leave(this);
  }

  /**
   * Ask the server to stop this stream (close() only disconnects this page).
   * Resolves to the server's JSON: status "cancelling" (202), the recover JSON
   * of a stream that ended cancelled (200), or one that had ended otherwise
   * (409). Rejects on 401/403/404 and network errors. Every follower, this
   * one included, then receives the "cancelled" event.
   */
  async cancel(reason?: string | null): Promise<CancelAnswer> {
    return cancelStream(this.url, await askToken(this.options), this._credentials(), reason);
  }

  // --- Member (see hub.ts): the hub carries this source on a shared connection.

  /** @internal The hub starts (a hub) or stops (null) carrying this source. */
  _carry(hub: Carrier | null): void {
    if (this._closed || this._carrier === hub) return;
    this._carrier = hub;
    clearTimeout(this._timer);
    this._disarm();
    this._dropSource();
    if (hub) this._setStatus(hub.connected ? "connected" : "connecting");
    else void this._start();
  }

  /** @internal An event for this stream from the hub. */
  _deliver(envelope: Envelope): void {
    if (this._closed) return;
    const id = envelope.eventId ?? null;
    if (id && !isAfter(id, this.lastEventId)) return; // another tab's older cursor
    this._event(id, envelope);
  }

  /** @internal The hub's connection state changed. */
  _hubStatus(status: Status): void {
    if (this._closed) return;
    if (status === "error") return this._finish("error");
    this._setStatus(status);
  }

  // --- Internals.

  private _credentials(): RequestCredentials {
    return this.options.withCredentials ? "include" : "same-origin";
  }

  private _setStatus(status: Status): void {
    if (this.status === status) return;
    this.status = status;
    this.onstatus?.(status);
  }

  private _emit(event: StreamEvent): void {
    this.onevent?.(event as StreamEvent<T>);
  }

  private _finish(status: Status): void {
    // The status first (a hub sees an ended member leave, and keeps its
    // connection), the callback last (it sees a closed source).
    const changed = this.status !== status;
    this.status = status;
    this.close();
    if (this.options.persist) storage()?.removeItem(this._storageKey);
    if (changed) this.onstatus?.(status);
  }

  private _dropSource(): void {
    if (this._source) this._source.close();
    this._source = null;
  }

  private _event(id: string | null, envelope: Envelope): void {
    if (id) {
      this.lastEventId = id;
      if (this.options.persist) storage()?.setItem(this._storageKey, id);
    }
    const event: StreamEvent = { id, type: envelope.type, data: envelope.data };
    if (this.streamId) event.stream = this.streamId;
    this._emit(event);
    if (TERMINAL[envelope.type]) this._finish(TERMINAL[envelope.type] as Status);
  }

  /** Ask /recover (see {@link RecoverState}); deliver an ended stream's end if `deliver`. */
  private async _recover(deliver: boolean): Promise<RecoverState> {
    const token = await askToken(this.options).catch(() => this.options.token);
    const answer = await recover(this.url, token, this._credentials());
    if (!answer) return "unknown"; // network down: try again later
    if (answer.status === 401) return "unauthorized";
    if (FATAL_STATUS[answer.status]) return "fatal";
    const body = answer.body;
    if (!body) return "unknown"; // 503 and friends: try again later
    if (!TERMINAL[body.status]) return "active";
    if (!deliver) return body.eventId === this.lastEventId ? `have-end:${body.status}` : "ended";
    if (this._closed) return "ended";
    this._event(body.eventId ?? null, { type: body.terminalEventType ?? body.status, data: body.terminalEventData });
    return "ended";
  }

  /** Recover, asking for a fresh token once on a 401. */
  private async _recoverWithToken(deliver: boolean): Promise<RecoverState> {
    const state = await this._recover(deliver);
    if (state !== "unauthorized") return state;
    if (!this.options.getToken) return "fatal";
    const again = await this._recover(deliver); // _recover asked getToken afresh
    return again === "unauthorized" ? "fatal" : again;
  }

  private async _start(): Promise<void> {
    if (this._closed || this._carrier) return;
    // With a position, connect: the server replays what this client lacks.
    if (this.lastEventId) return this._connect();
    const state = await this._recoverWithToken(true);
    if (this._closed || this._carrier || state === "ended") return;
    if (state === "fatal") return this._finish("error");
    if (state === "unknown") return this._retry();
    return this._connect();
  }

  private async _connect(): Promise<void> {
    const token = await askToken(this.options).catch(() => this.options.token);
    if (this._closed || this._carrier) return;
    const source = new EventSource(
      withParams(this.url, {
        lastEventId: this.lastEventId,
        token,
        from: this.lastEventId ? null : this.options.from,
      }),
      { withCredentials: this.options.withCredentials },
    );
    let opened = false;
    this._source = source;
    this._arm();
    source.onopen = () => {
      opened = true;
      this._arm();
    };
    source.addEventListener("heartbeat", () => this._arm());
    source.onmessage = (message: MessageEvent<string>) => {
      this._arm();
      let envelope: Envelope;
      try {
        envelope = JSON.parse(message.data) as Envelope;
      } catch {
        return; // not ours
      }
      if (envelope.type === "connected") {
        if (envelope.heartbeatMs) this._heartbeatMs = envelope.heartbeatMs;
        this.attempts = 0; // the server accepted this connection
        this._setStatus("connected");
        return;
      }
      if (envelope.type === "token-expiring") {
        if (this.options.getToken) this._reconnectNow();
        return;
      }
      // EventSource keeps the last id for frames without one: only take it from frames that may carry one.
      const id = envelope.type === "reset" ? null : message.lastEventId || null;
      this._event(id, envelope);
    };
    source.onerror = () => {
      if (this._source !== source) return;
      this._dropSource();
      if (opened || !this.lastEventId) return this._retry(); // _start recovers
      // Refused before opening: learn the status EventSource hides.
      this._disarm();
      void this._recoverWithToken(false).then((state) => {
        if (this._closed || this._carrier) return;
        if (state === "fatal") return this._finish("error");
        // A 204: this client has the terminal event already.
        if (state.startsWith("have-end:")) return this._finish(TERMINAL[state.slice(9)] as Status);
        this._retry();
      });
    };
  }

  private _retry(): void {
    this._disarm();
    if (this._closed || this._carrier) return;
    if (this.attempts >= this.options.maxAttempts) return this._finish("error");
    this._setStatus("reconnecting");
    const delay = backoffDelay(this.attempts, this.options.baseDelayMs, this.options.maxDelayMs, this.options.random);
    this.attempts += 1;
    this._timer = setTimeout(() => void this._start(), delay);
  }

  /** Close the connection and connect again at once, by the cursor. */
  private _reconnectNow(): void {
    if (this._closed || this._carrier) return;
    clearTimeout(this._timer);
    this._disarm();
    this._dropSource();
    void this._start();
  }

  /** The page came back (online, visible, pageshow): don't wait out a backoff or a throttled watchdog. */
  private _wake(): void {
    if (this._closed) return;
    if (this._carrier) return this._carrier.wake();
    if (!this._source) {
      if (this.status === "reconnecting") this._reconnectNow();
      return;
    }
    if (Date.now() - this._lastByteAt > this._heartbeatMs * 1.2) this._reconnectNow();
  }

  private _arm(): void {
    this._disarm();
    this._lastByteAt = Date.now();
    this._watchdog = setTimeout(() => {
      if (!this._source) return;
      this._dropSource(); // silent too long: a half-open connection
      this._retry();
    }, this._heartbeatMs * this.options.watchdogFactor);
  }

  private _disarm(): void {
    clearTimeout(this._watchdog);
    this._watchdog = undefined;
  }

  /** See {@link findKey}: the signed-in user's latest stream of `key`, or null. */
  static findKey = findKey;

  /**
   * Follow the latest stream of `key`: requests, then recover (an ended stream
   * delivers its end at once), then follow. Resolves to the source, or null
   * when the key has no stream.
   */
  static async openKey<T = unknown>(
    prefix: string,
    key: string,
    options?: SourceOptions,
  ): Promise<ResilientEventSource<T> | null> {
    const found = await findKey(prefix, key, options);
    return found ? new ResilientEventSource<T>(streamUrl(prefix, found.streamId), options) : null;
  }
}
