// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { hubFor } from "./hubs.js";
import { cancelStream, findKey, recover, streamUrl } from "./requests.js";
import { TabShare } from "./share.js";
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
  withParams
} from "./util.js";
const _ResilientEventSource = class _ResilientEventSource {
  /**
   * Start following `url` at once (recover first, then connect).
   * @param url `<prefix>/streams/<id>` (another URL works alone, without multiplexing).
   */
  constructor(url, options) {
    /** Where this source stands. */
    this.status = "connecting";
    /** Reconnects in a row without a successful open. */
    this.attempts = 0;
    /** Called with every event (see {@link StreamEvent}). */
    this.onevent = null;
    /** Called whenever {@link status} changes. */
    this.onstatus = null;
    this._source = null;
    this._closed = false;
    this._lastByteAt = 0;
    this._carrier = null;
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
  get sharing() {
    if (!(this._hub instanceof TabShare)) return null;
    return this._hub.leader ? "leader" : "follower";
  }
  /** The cursor: the id of the last event received (hand it to a new source to go on). */
  get cursor() {
    return this.lastEventId;
  }
  /** Disconnect this page (the stream goes on; see {@link cancel}). */
  close() {
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
  async cancel(reason) {
    return cancelStream(this.url, await askToken(this.options), this._credentials(), reason);
  }
  // --- Member (see hub.ts): the hub carries this source on a shared connection.
  /** @internal The hub starts (a hub) or stops (null) carrying this source. */
  _carry(hub) {
    if (this._closed || this._carrier === hub) return;
    this._carrier = hub;
    clearTimeout(this._timer);
    this._disarm();
    this._dropSource();
    if (hub) this._setStatus(hub.connected ? "connected" : "connecting");
    else void this._start();
  }
  /** @internal An event for this stream from the hub. */
  _deliver(envelope) {
    if (this._closed) return;
    const id = envelope.eventId ?? null;
    if (id && !isAfter(id, this.lastEventId)) return;
    this._event(id, envelope);
  }
  /** @internal The hub's connection state changed. */
  _hubStatus(status) {
    if (this._closed) return;
    if (status === "error") return this._finish("error");
    this._setStatus(status);
  }
  // --- Internals.
  _credentials() {
    return this.options.withCredentials ? "include" : "same-origin";
  }
  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.onstatus?.(status);
  }
  _emit(event) {
    this.onevent?.(event);
  }
  _finish(status) {
    const changed = this.status !== status;
    this.status = status;
    this.close();
    if (this.options.persist) storage()?.removeItem(this._storageKey);
    if (changed) this.onstatus?.(status);
  }
  _dropSource() {
    if (this._source) this._source.close();
    this._source = null;
  }
  _event(id, envelope) {
    if (id) {
      this.lastEventId = id;
      if (this.options.persist) storage()?.setItem(this._storageKey, id);
    }
    const event = { id, type: envelope.type, data: envelope.data };
    if (this.streamId) event.stream = this.streamId;
    this._emit(event);
    if (TERMINAL[envelope.type]) this._finish(TERMINAL[envelope.type]);
  }
  /** Ask /recover (see {@link RecoverState}); deliver an ended stream's end if `deliver`. */
  async _recover(deliver) {
    const token = await askToken(this.options).catch(() => this.options.token);
    const answer = await recover(this.url, token, this._credentials());
    if (!answer) return "unknown";
    if (answer.status === 401) return "unauthorized";
    if (FATAL_STATUS[answer.status]) return "fatal";
    const body = answer.body;
    if (!body) return "unknown";
    if (!TERMINAL[body.status]) return "active";
    if (!deliver) return body.eventId === this.lastEventId ? `have-end:${body.status}` : "ended";
    if (this._closed) return "ended";
    this._event(body.eventId ?? null, { type: body.terminalEventType ?? body.status, data: body.terminalEventData });
    return "ended";
  }
  /** Recover, asking for a fresh token once on a 401. */
  async _recoverWithToken(deliver) {
    const state = await this._recover(deliver);
    if (state !== "unauthorized") return state;
    if (!this.options.getToken) return "fatal";
    const again = await this._recover(deliver);
    return again === "unauthorized" ? "fatal" : again;
  }
  async _start() {
    if (this._closed || this._carrier) return;
    if (this.lastEventId) return this._connect();
    const state = await this._recoverWithToken(true);
    if (this._closed || this._carrier || state === "ended") return;
    if (state === "fatal") return this._finish("error");
    if (state === "unknown") return this._retry();
    return this._connect();
  }
  async _connect() {
    const token = await askToken(this.options).catch(() => this.options.token);
    if (this._closed || this._carrier) return;
    const source = new EventSource(
      withParams(this.url, {
        lastEventId: this.lastEventId,
        token,
        from: this.lastEventId ? null : this.options.from
      }),
      { withCredentials: this.options.withCredentials }
    );
    let opened = false;
    this._source = source;
    this._arm();
    source.onopen = () => {
      opened = true;
      this._arm();
    };
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
        this._setStatus("connected");
        return;
      }
      if (envelope.type === "token-expiring") {
        if (this.options.getToken) this._reconnectNow();
        return;
      }
      const id = envelope.type === "reset" ? null : message.lastEventId || null;
      this._event(id, envelope);
    };
    source.onerror = () => {
      if (this._source !== source) return;
      this._dropSource();
      if (opened || !this.lastEventId) return this._retry();
      this._disarm();
      void this._recoverWithToken(false).then((state) => {
        if (this._closed || this._carrier) return;
        if (state === "fatal") return this._finish("error");
        if (state.startsWith("have-end:")) return this._finish(TERMINAL[state.slice(9)]);
        this._retry();
      });
    };
  }
  _retry() {
    this._disarm();
    if (this._closed || this._carrier) return;
    if (this.attempts >= this.options.maxAttempts) return this._finish("error");
    this._setStatus("reconnecting");
    const delay = backoffDelay(this.attempts, this.options.baseDelayMs, this.options.maxDelayMs, this.options.random);
    this.attempts += 1;
    this._timer = setTimeout(() => void this._start(), delay);
  }
  /** Close the connection and connect again at once, by the cursor. */
  _reconnectNow() {
    if (this._closed || this._carrier) return;
    clearTimeout(this._timer);
    this._disarm();
    this._dropSource();
    void this._start();
  }
  /** The page came back (online, visible, pageshow): don't wait out a backoff or a throttled watchdog. */
  _wake() {
    if (this._closed) return;
    if (this._carrier) return this._carrier.wake();
    if (!this._source) {
      if (this.status === "reconnecting") this._reconnectNow();
      return;
    }
    if (Date.now() - this._lastByteAt > this._heartbeatMs * 1.2) this._reconnectNow();
  }
  _arm() {
    this._disarm();
    this._lastByteAt = Date.now();
    this._watchdog = setTimeout(() => {
      if (!this._source) return;
      this._dropSource();
      this._retry();
    }, this._heartbeatMs * this.options.watchdogFactor);
  }
  _disarm() {
    clearTimeout(this._watchdog);
    this._watchdog = void 0;
  }
  /**
   * Follow the latest stream of `key`: requests, then recover (an ended stream
   * delivers its end at once), then follow. Resolves to the source, or null
   * when the key has no stream.
   */
  static async openKey(prefix, key, options) {
    const found = await findKey(prefix, key, options);
    return found ? new _ResilientEventSource(streamUrl(prefix, found.streamId), options) : null;
  }
};
/** See {@link findKey}: the signed-in user's latest stream of `key`, or null. */
_ResilientEventSource.findKey = findKey;
let ResilientEventSource = _ResilientEventSource;
export {
  ResilientEventSource
};
