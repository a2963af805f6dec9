// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { askToken, backoffDelay, isAfter, withDefaults, withParams } from "./util.js";
const PLAN_MS = 25;
const ENDED = /* @__PURE__ */ new Set(["completed", "failed", "cancelled", "error"]);
class MultiHub {
  /**
   * @param prefix the blueprint's URL prefix (`/sse`).
   * @param always carry even a single member (tab sharing), else from two on.
   */
  constructor(prefix, options, always = false) {
    this.prefix = prefix;
    this.always = always;
    this.members = /* @__PURE__ */ new Set();
    this.connected = false;
    this.attempts = 0;
    this._source = null;
    this._streams = [];
    this._planned = false;
    this._lastByteAt = 0;
    this._options = withDefaults({ ...options, getToken: null, token: null });
    this._heartbeatMs = options.heartbeatMs;
  }
  /** Carry `member` (from the next planning step on). */
  join(member) {
    this.members.add(member);
    this._plan();
  }
  /** Stop carrying `member`. */
  leave(member) {
    if (!this.members.delete(member)) return;
    if (ENDED.has(member.status) && this.members.size >= (this.always ? 1 : 2)) return;
    this._plan();
  }
  wake() {
    if (!this._source) {
      if (this._timer !== void 0) this._reconnect();
      return;
    }
    if (Date.now() - this._lastByteAt > this._heartbeatMs * 1.2) this._reconnect();
  }
  /**
   * Decide whether to carry and on which streams, once per burst of joins
   * and leaves (a page opening ten chats reconnects once, not ten times).
   */
  _plan() {
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
  _wanted() {
    const ids = /* @__PURE__ */ new Set();
    for (const member of this.members) if (member.streamId) ids.add(member.streamId);
    return [...ids];
  }
  /** Each stream's position: the earliest of its members' cursors (members drop what they have). */
  _cursor(streams) {
    return streams.map((stream) => {
      let position;
      for (const member of this.members) {
        if (member.streamId !== stream) continue;
        if (position === void 0 || position !== null && isAfter(position, member.lastEventId)) {
          position = member.lastEventId;
        }
      }
      return position ?? "";
    }).join(",");
  }
  async _tokens(streams) {
    const tokens = [];
    for (const stream of streams) {
      const member = [...this.members].find((m) => m.streamId === stream);
      tokens.push(member ? await askToken(member.options).catch(() => member.options.token) ?? "" : "");
    }
    return tokens.some((t) => t) ? tokens.join(",") : null;
  }
  _stop() {
    clearTimeout(this._timer);
    this._timer = void 0;
    this._disarm();
    this._source?.close();
    this._source = null;
    this._streams = [];
    this.connected = false;
  }
  _reconnect() {
    this._stop();
    void this._connect();
  }
  async _connect() {
    const streams = this._wanted();
    if (!streams.length) return;
    const tokens = await this._tokens(streams);
    if (this._source || streams.join() !== this._wanted().join()) return;
    const url = withParams(this.prefix.replace(/\/$/, "") + "/multi", {
      streams: streams.join(","),
      tokens,
      lastEventId: this._cursor(streams).replace(/,/g, "") ? this._cursor(streams) : null,
      from: this._options.from
    });
    const source = new EventSource(url, { withCredentials: this._options.withCredentials });
    this._source = source;
    this._streams = streams;
    this._arm();
    source.onopen = () => this._arm();
    source.addEventListener("heartbeat", () => this._arm());
    source.onmessage = (message) => {
      this._arm();
      let envelope;
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
      this._retry();
    };
  }
  _retry() {
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
      this._timer = void 0;
      void this._connect();
    }, delay);
  }
  _arm() {
    this._disarm();
    this._lastByteAt = Date.now();
    this._watchdog = setTimeout(() => this._retry(), this._heartbeatMs * this._options.watchdogFactor);
  }
  _disarm() {
    clearTimeout(this._watchdog);
    this._watchdog = void 0;
  }
}
export {
  MultiHub
};
