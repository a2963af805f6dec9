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
import { askToken, backoffDelay, isAfter, withDefaults, withParams, type Options } from "./util.js";

/** What the hub needs of a source it carries. */
export interface Member {
  readonly streamId: string | null;
  readonly lastEventId: string | null;
  readonly status: Status;
  readonly options: Options;
  /** Start (carrier) or stop (null) being carried; stopped, the member connects on its own. */
  _carry(carrier: Carrier | null): void;
  /** An event of the member's stream: the envelope with `eventId`. */
  _deliver(envelope: { type: string; data?: unknown; eventId?: string | null }): void;
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
export type Hub = Carrier & { join(member: Member): void; leave(member: Member): void };

/** How long joins and leaves are gathered before the connection changes, ms. */
const PLAN_MS = 25;

const ENDED = new Set<Status>(["completed", "failed", "cancelled", "error"]);

/** Carries members of one prefix on one multiplexed connection. */
export class MultiHub implements Carrier {
  readonly members = new Set<Member>();
  connected = false;
  attempts = 0;
  private _source: EventSource | null = null;
  private _streams: string[] = [];
  private _planned = false;
  private _timer: ReturnType<typeof setTimeout> | undefined;
  private _watchdog: ReturnType<typeof setTimeout> | undefined;
  private _heartbeatMs: number;
  private _lastByteAt = 0;
  private readonly _options: Options;

  /**
   * @param prefix the blueprint's URL prefix (`/sse`).
   * @param always carry even a single member (tab sharing), else from two on.
   */
  constructor(
    readonly prefix: string,
    options: Options,
    readonly always = false,
  ) {
    this._options = withDefaults({ ...options, getToken: null, token: null });
    this._heartbeatMs = options.heartbeatMs;
  }

  /** Carry `member` (from the next planning step on). */
  join(member: Member): void {
    this.members.add(member);
    this._plan();
  }

  /** Stop carrying `member`. */
  leave(member: Member): void {
    if (!this.members.delete(member)) return;
    if (ENDED.has(member.status) && this.members.size >= (this.always ? 1 : 2)) return; // the server dropped it already
    this._plan();
  }

  wake(): void {
    if (!this._source) {
      if (this._timer !== undefined) this._reconnect();
      return;
    }
    if (Date.now() - this._lastByteAt > this._heartbeatMs * 1.2) this._reconnect();
  }

  /**
   * Decide whether to carry and on which streams, once per burst of joins
   * and leaves (a page opening ten chats reconnects once, not ten times).
   */
  private _plan(): void {
    if (this._planned) return;
    this._planned = true;
    setTimeout(() => {
      this._planned = false;
      const carry = this.members.size >= (this.always ? 1 : 2);
      for (const member of this.members) member._carry(carry ? this : null);
      if (!carry) return this._stop();
      const streams = this._wanted();
      if (this._source && streams.join() === this._streams.join()) return;
      this._reconnect();
    }, PLAN_MS);
  }

  private _wanted(): string[] {
    const ids = new Set<string>();
    for (const member of this.members) if (member.streamId) ids.add(member.streamId);
    return [...ids];
  }

  /** Each stream's position: the earliest of its members' cursors (members drop what they have). */
  private _cursor(streams: string[]): string {
    return streams
      .map((stream) => {
        let position: string | null | undefined;
        for (const member of this.members) {
          if (member.streamId !== stream) continue;
          if (position === undefined || (position !== null && isAfter(position, member.lastEventId))) {
            position = member.lastEventId;
          }
        }
        return position ?? "";
      })
      .join(",");
  }

  private async _tokens(streams: string[]): Promise<string | null> {
    const tokens: string[] = [];
    for (const stream of streams) {
      const member = [...this.members].find((m) => m.streamId === stream);
      tokens.push(member ? ((await askToken(member.options).catch(() => member.options.token)) ?? "") : "");
    }
    return tokens.some((t) => t) ? tokens.join(",") : null;
  }

  private _stop(): void {
    clearTimeout(this._timer);
    this._timer = undefined;
    this._disarm();
    this._source?.close();
    this._source = null;
    this._streams = [];
    this.connected = false;
  }

  private _reconnect(): void {
    this._stop();
    void this._connect();
  }

  private async _connect(): Promise<void> {
    const streams = this._wanted();
    if (!streams.length) return;
    const tokens = await this._tokens(streams);
    if (this._source || streams.join() !== this._wanted().join()) return; // planned again meanwhile
    const url = withParams(this.prefix.replace(/\/$/, "") + "/multi", {
      streams: streams.join(","),
      tokens,
      lastEventId: this._cursor(streams).replace(/,/g, "") ? this._cursor(streams) : null,
      from: this._options.from,
    });
    const source = new EventSource(url, { withCredentials: this._options.withCredentials });
    this._source = source;
    this._streams = streams;
    this._arm();
    source.onopen = () => this._arm();
    source.addEventListener("heartbeat", () => this._arm());
    source.onmessage = (message: MessageEvent<string>) => {
      this._arm();
      let envelope: { type: string; stream?: string; heartbeatMs?: number; data?: unknown; eventId?: string | null };
      try {
        envelope = JSON.parse(message.data);
      } catch {
        return;
      }
      if (envelope.type === "connected") {
        if (envelope.heartbeatMs) this._heartbeatMs = envelope.heartbeatMs;
        this.attempts = 0;
        this.connected = true;
        for (const member of this.members) member._hubStatus("connected");
        return;
      }
      if (envelope.type === "token-expiring") return this._reconnect();
      for (const member of [...this.members]) {
        if (member.streamId !== envelope.stream) continue;
        if (envelope.type === "error") member._hubStatus("error");
        else member._deliver(envelope);
      }
    };
    source.onerror = () => {
      if (this._source !== source) return;
      // A 204 (every stream ended for us) also lands here; members end on their own.
      this._retry();
    };
  }

  private _retry(): void {
    this._stop();
    if (!this.members.size) return;
    if (this.attempts >= this._options.maxAttempts) {
      for (const member of [...this.members]) member._hubStatus("error");
      return;
    }
    for (const member of this.members) member._hubStatus("reconnecting");
    const o = this._options;
    const delay = backoffDelay(this.attempts, o.baseDelayMs, o.maxDelayMs, o.random);
    this.attempts += 1;
    this._timer = setTimeout(() => {
      this._timer = undefined;
      void this._connect();
    }, delay);
  }

  private _arm(): void {
    this._disarm();
    this._lastByteAt = Date.now();
    this._watchdog = setTimeout(() => this._retry(), this._heartbeatMs * this._options.watchdogFactor);
  }

  private _disarm(): void {
    clearTimeout(this._watchdog);
    this._watchdog = undefined;
  }
}
