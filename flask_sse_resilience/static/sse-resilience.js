// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
"use strict";
(() => {
  var __defProp = Object.defineProperty;
  var __defProps = Object.defineProperties;
  var __getOwnPropDescs = Object.getOwnPropertyDescriptors;
  var __getOwnPropSymbols = Object.getOwnPropertySymbols;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __propIsEnum = Object.prototype.propertyIsEnumerable;
  var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
  var __spreadValues = (a, b) => {
    for (var prop in b || (b = {}))
      if (__hasOwnProp.call(b, prop))
        __defNormalProp(a, prop, b[prop]);
    if (__getOwnPropSymbols)
      for (var prop of __getOwnPropSymbols(b)) {
        if (__propIsEnum.call(b, prop))
          __defNormalProp(a, prop, b[prop]);
      }
    return a;
  };
  var __spreadProps = (a, b) => __defProps(a, __getOwnPropDescs(b));
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };

  // src/index.ts
  var index_exports = {};
  __export(index_exports, {
    DEFAULTS: () => DEFAULTS,
    MultiHub: () => MultiHub,
    ResilientEventSource: () => ResilientEventSource,
    TabShare: () => TabShare,
    backoffDelay: () => backoffDelay,
    findKey: () => findKey,
    isAfter: () => isAfter,
    streamUrl: () => streamUrl
  });

  // src/util.ts
  var TERMINAL = {
    completed: "completed",
    failed: "failed",
    orphaned: "failed",
    cancelled: "cancelled"
  };
  var FATAL_STATUS = { 401: true, 403: true, 404: true };
  var DEFAULTS = {
    baseDelayMs: 500,
    maxDelayMs: 15e3,
    maxAttempts: 12,
    heartbeatMs: 15e3,
    watchdogFactor: 2.5,
    persist: false,
    withCredentials: false,
    token: null,
    getToken: null,
    from: null,
    lastEventId: null,
    multiplex: "auto",
    shareAcrossTabs: false,
    random: Math.random
  };
  function withDefaults(options) {
    const merged = __spreadValues({}, DEFAULTS);
    for (const [key, value] of Object.entries(options != null ? options : {})) {
      if (value !== void 0) merged[key] = value;
    }
    return merged;
  }
  function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
    const ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
    return Math.floor(random() * ceiling);
  }
  function withParams(url, params) {
    const parts = [];
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== void 0 && value !== "") {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
      }
    }
    if (!parts.length) return url;
    return url + (url.indexOf("?") === -1 ? "?" : "&") + parts.join("&");
  }
  function subResource(url, what) {
    return url.replace(/\/?(\?.*)?$/, "/" + what + "$1");
  }
  function storage() {
    var _a;
    try {
      return (_a = globalThis.sessionStorage) != null ? _a : null;
    } catch (e) {
      return null;
    }
  }
  function parseId(id) {
    const match = /^(\d+)-(\d+)$/.exec(id != null ? id : "");
    return match ? [Number(match[1]), Number(match[2])] : null;
  }
  function isAfter(a, b) {
    const x = parseId(a);
    const y = parseId(b);
    if (!x) return false;
    if (!y) return true;
    return x[0] > y[0] || x[0] === y[0] && x[1] > y[1];
  }
  function splitStreamUrl(url) {
    var _a, _b, _c;
    const match = /^(.*)\/streams\/([A-Za-z0-9_-]+)\/?$/.exec((_a = url.split("?")[0]) != null ? _a : "");
    if (!match || url.indexOf("?") !== -1) return null;
    return { prefix: (_b = match[1]) != null ? _b : "", streamId: (_c = match[2]) != null ? _c : "" };
  }
  async function askToken(options) {
    if (!options.getToken) return options.token;
    const token = await options.getToken();
    options.token = token != null ? token : null;
    return options.token;
  }
  function onWakeUp(listener) {
    const win = typeof window !== "undefined" ? window : null;
    const doc = typeof document !== "undefined" ? document : null;
    if (!win || !win.addEventListener) return () => {
    };
    const visible = () => {
      if (!doc || doc.visibilityState === "visible") listener();
    };
    win.addEventListener("online", listener);
    win.addEventListener("pageshow", listener);
    doc == null ? void 0 : doc.addEventListener("visibilitychange", visible);
    return () => {
      win.removeEventListener("online", listener);
      win.removeEventListener("pageshow", listener);
      doc == null ? void 0 : doc.removeEventListener("visibilitychange", visible);
    };
  }

  // src/hub.ts
  var PLAN_MS = 25;
  var ENDED = /* @__PURE__ */ new Set(["completed", "failed", "cancelled", "error"]);
  var MultiHub = class {
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
      this._options = withDefaults(__spreadProps(__spreadValues({}, options), { getToken: null, token: null }));
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
        return position != null ? position : "";
      }).join(",");
    }
    async _tokens(streams) {
      var _a;
      const tokens = [];
      for (const stream of streams) {
        const member = [...this.members].find((m) => m.streamId === stream);
        tokens.push(member ? (_a = await askToken(member.options).catch(() => member.options.token)) != null ? _a : "" : "");
      }
      return tokens.some((t) => t) ? tokens.join(",") : null;
    }
    _stop() {
      var _a;
      clearTimeout(this._timer);
      this._timer = void 0;
      this._disarm();
      (_a = this._source) == null ? void 0 : _a.close();
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
        } catch (e) {
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
  };

  // src/share.ts
  var RemoteMember = class {
    constructor(share, tab, streamId, lastEventId, token) {
      this.share = share;
      this.tab = tab;
      this.streamId = streamId;
      this.lastEventId = lastEventId;
      this.status = "connecting";
      this.options = withDefaults({ token });
    }
    _carry() {
    }
    _deliver(envelope) {
      if (envelope.eventId) this.lastEventId = envelope.eventId;
      const end = TERMINAL[envelope.type];
      if (end) this.status = end;
      this.share.post({ kind: "event", stream: this.streamId, envelope });
    }
    _hubStatus(status) {
      this.status = status;
      this.share.post({ kind: "status", stream: this.streamId, status });
    }
  };
  var TabShare = class {
    constructor(prefix, options) {
      this.prefix = prefix;
      this.options = options;
      /** True while this tab holds the connection. */
      this.leader = false;
      this.tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
      this.local = /* @__PURE__ */ new Set();
      this.remote = /* @__PURE__ */ new Map();
      this.hub = null;
      this._sent = Promise.resolve();
      const name = "sse-resilience:" + prefix;
      this.channel = new BroadcastChannel(name);
      this.channel.onmessage = (message) => this._receive(message.data);
      void navigator.locks.request(name, () => new Promise(() => this._lead()));
      addEventListener("pagehide", () => {
        if (this.leader) return;
        for (const member of this.local) {
          if (member.streamId) this.post({ kind: "leave", tab: this.tab, stream: member.streamId });
        }
      });
    }
    get connected() {
      return this.hub ? this.hub.connected : this.local.size > 0;
    }
    /** Share `member`'s stream with the other tabs (through the leader). */
    join(member) {
      this.local.add(member);
      member._carry(this);
      if (this.hub) this.hub.join(member);
      else this._announce(member);
    }
    /** Stop sharing `member`. */
    leave(member) {
      if (!this.local.delete(member)) return;
      if (this.hub) this.hub.leave(member);
      else if (member.streamId && ![...this.local].some((m) => m.streamId === member.streamId)) {
        this._leave(member.streamId);
      }
    }
    wake() {
      var _a;
      (_a = this.hub) == null ? void 0 : _a.wake();
    }
    /** @internal Broadcast to the other tabs. */
    post(message) {
      this.channel.postMessage(message);
    }
    _announce(member) {
      const stream = member.streamId;
      if (!stream) return;
      this._sent = this._sent.then(() => askToken(member.options)).catch(() => member.options.token).then((token) => this.post({ kind: "join", tab: this.tab, stream, cursor: member.lastEventId, token }));
    }
    _leave(stream) {
      this._sent = this._sent.then(() => this.post({ kind: "leave", tab: this.tab, stream }));
    }
    /** This tab got the lock: hold the connection for every tab. */
    _lead() {
      this.leader = true;
      this.hub = new MultiHub(this.prefix, this.options, true);
      for (const member of this.local) this.hub.join(member);
      this.post({ kind: "leader", tab: this.tab });
    }
    _receive(message) {
      switch (message.kind) {
        case "leader":
          for (const member of this.local) this._announce(member);
          return;
        case "join": {
          if (!this.hub) return;
          const key = message.tab + " " + message.stream;
          const known = this.remote.get(key);
          if (known) this.hub.leave(known);
          const member = new RemoteMember(this, message.tab, message.stream, message.cursor, message.token);
          this.remote.set(key, member);
          this.hub.join(member);
          return;
        }
        case "leave": {
          const key = message.tab + " " + message.stream;
          const member = this.remote.get(key);
          if (!member || !this.hub) return;
          this.remote.delete(key);
          this.hub.leave(member);
          return;
        }
        case "event":
          for (const member of [...this.local]) if (member.streamId === message.stream) member._deliver(message.envelope);
          return;
        case "status":
          for (const member of [...this.local]) if (member.streamId === message.stream) member._hubStatus(message.status);
          return;
      }
    }
  };

  // src/hubs.ts
  var hubs = /* @__PURE__ */ new Map();
  function hubFor(prefix, options) {
    const name = [prefix, options.withCredentials, options.shareAcrossTabs, options.multiplex].join("|");
    let hub = hubs.get(name);
    if (!hub) {
      const canShare = typeof BroadcastChannel !== "undefined" && typeof navigator !== "undefined" && !!navigator.locks;
      hub = options.shareAcrossTabs && canShare ? new TabShare(prefix, options) : new MultiHub(prefix, options, options.multiplex === true);
      hubs.set(name, hub);
    }
    return hub;
  }

  // src/requests.ts
  function streamUrl(prefix, streamId) {
    return prefix.replace(/\/$/, "") + "/streams/" + encodeURIComponent(streamId);
  }
  async function findKey(prefix, key, options) {
    const target = prefix.replace(/\/$/, "") + "/keys/" + encodeURIComponent(key);
    const response = await fetch(target, { credentials: (options == null ? void 0 : options.withCredentials) ? "include" : "same-origin" });
    if (response.status === 204) return null;
    if (!response.ok) throw new Error("key lookup refused: " + response.status);
    return await response.json();
  }
  async function recover(url, token, credentials) {
    try {
      const response = await fetch(withParams(subResource(url, "recover"), { token }), { credentials });
      return { status: response.status, body: response.ok ? await response.json() : null };
    } catch (e) {
      return null;
    }
  }
  async function cancelStream(url, token, credentials, reason) {
    const body = reason === void 0 || reason === null ? {} : { reason: String(reason) };
    const response = await fetch(withParams(subResource(url, "cancel"), { token }), {
      method: "POST",
      credentials,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    });
    if (response.status >= 400 && response.status !== 409) throw new Error("cancel refused: " + response.status);
    return await response.json();
  }

  // src/source.ts
  var _ResilientEventSource = class _ResilientEventSource {
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
      var _a, _b;
      this.url = url;
      this.options = withDefaults(options);
      const parts = splitStreamUrl(url);
      this.streamId = parts ? parts.streamId : null;
      this._heartbeatMs = this.options.heartbeatMs;
      this._storageKey = "sse-resilience:" + url;
      this.lastEventId = this.options.lastEventId;
      if (!this.lastEventId && this.options.persist) this.lastEventId = (_b = (_a = storage()) == null ? void 0 : _a.getItem(this._storageKey)) != null ? _b : null;
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
      var _a;
      if (this._closed) return;
      this._closed = true;
      clearTimeout(this._timer);
      this._disarm();
      this._unwake();
      this._dropSource();
      (_a = this._hub) == null ? void 0 : _a.leave(this);
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
      var _a;
      if (this._closed) return;
      const id = (_a = envelope.eventId) != null ? _a : null;
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
      var _a;
      if (this.status === status) return;
      this.status = status;
      (_a = this.onstatus) == null ? void 0 : _a.call(this, status);
    }
    _emit(event) {
      var _a;
      (_a = this.onevent) == null ? void 0 : _a.call(this, event);
    }
    _finish(status) {
      var _a, _b;
      const changed = this.status !== status;
      this.status = status;
      this.close();
      if (this.options.persist) (_a = storage()) == null ? void 0 : _a.removeItem(this._storageKey);
      if (changed) (_b = this.onstatus) == null ? void 0 : _b.call(this, status);
    }
    _dropSource() {
      if (this._source) this._source.close();
      this._source = null;
    }
    _event(id, envelope) {
      var _a;
      if (id) {
        this.lastEventId = id;
        if (this.options.persist) (_a = storage()) == null ? void 0 : _a.setItem(this._storageKey, id);
      }
      const event = { id, type: envelope.type, data: envelope.data };
      if (this.streamId) event.stream = this.streamId;
      this._emit(event);
      if (TERMINAL[envelope.type]) this._finish(TERMINAL[envelope.type]);
    }
    /** Ask /recover (see {@link RecoverState}); deliver an ended stream's end if `deliver`. */
    async _recover(deliver) {
      var _a, _b;
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
      this._event((_a = body.eventId) != null ? _a : null, { type: (_b = body.terminalEventType) != null ? _b : body.status, data: body.terminalEventData });
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
        } catch (e) {
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
  var ResilientEventSource = _ResilientEventSource;

  // src/global.ts
  globalThis.SSEResilience = index_exports;
})();
