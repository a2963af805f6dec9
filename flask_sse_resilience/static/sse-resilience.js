/*
 * flask-sse-resilience browser client: an EventSource that never loses the result.
 *
 * No dependencies, no build step. Load it as a classic script
 *   <script src="/sse/static/sse-resilience.js"></script>   (window.SSEResilience)
 * or as an ES module
 *   import { ResilientEventSource } from "/sse/static/sse-resilience.mjs";
 *
 * It follows the client algorithm of docs/protocol.rst, in order:
 *  1. without a last event id, asks <url>/recover first: if the stream already
 *     ended, it delivers the terminal event and never opens a connection
 *     (with an id it connects, and the server replays what it lacks);
 *  2. connects with EventSource and hands every event (the JSON envelope
 *     {"type", "data"} plus its id) to onevent; a late joiner of a stream
 *     whose producer keeps snapshots first gets a "snapshot" event standing
 *     for everything before it (options.from: "start" for the whole log,
 *     "latest" for only what comes next);
 *  3. on an error, or when no byte arrived for 2.5 heartbeat intervals (a
 *     half-open connection), closes and reconnects with exponential backoff and
 *     full jitter, resuming after the last event id it saw (sent as the
 *     lastEventId query parameter, since a new EventSource cannot set the
 *     Last-Event-ID header); optionally remembered in sessionStorage so that a
 *     page reload resumes too;
 *     The attempt count restarts when the server accepts a connection (its
 *     "connected" frame);
 *  4. stops for good on a terminal event (completed, failed, orphaned,
 *     cancelled), on 401/403/404 (learnt from /recover after a connection
 *     failed to open, since EventSource hides status codes), and when the
 *     attempt budget is spent.
 *
 * cancel(reason) asks the server to stop the stream's producer (POST
 * <url>/cancel); the "cancelled" event then ends this source like any end.
 * close() only disconnects this page. ResilientEventSource.openKey(prefix, key)
 * finds the signed-in user's latest stream of a key (GET <prefix>/keys/<key>),
 * as a reloaded page does, and follows it.
 */
(function (root) {
  "use strict";

  var TERMINAL = { completed: "completed", failed: "failed", orphaned: "failed", cancelled: "cancelled" };
  var FATAL_STATUS = { 401: true, 403: true, 404: true };

  var DEFAULTS = {
    baseDelayMs: 500, // first backoff ceiling
    maxDelayMs: 15000, // backoff ceiling cap
    maxAttempts: 12, // reconnects in a row without a successful open
    heartbeatMs: 15000, // until the server says otherwise in "connected"
    watchdogFactor: 2.5, // silence of this many heartbeats means a dead line
    persist: false, // remember the last event id in sessionStorage
    withCredentials: false, // cross-origin cookies (needs the CORS allow-list)
    token: null, // a stream token from sse.stream_token(), if no cookie
    from: null, // without a cursor: "snapshot" (server default), "start" or "latest"
    random: Math.random, // for tests
  };

  /** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)] ms. */
  function backoffDelay(attempt, baseMs, capMs, random) {
    var ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
    return Math.floor((random || Math.random)() * ceiling);
  }

  function withParams(url, params) {
    var parts = [];
    for (var key in params) {
      if (params[key] !== null && params[key] !== undefined && params[key] !== "") {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
      }
    }
    if (!parts.length) return url;
    return url + (url.indexOf("?") === -1 ? "?" : "&") + parts.join("&");
  }

  function storage() {
    try {
      return root.sessionStorage;
    } catch (e) {
      return null; // disabled, or a sandboxed frame
    }
  }

  function ResilientEventSource(url, options) {
    var opts = {};
    var key;
    for (key in DEFAULTS) opts[key] = DEFAULTS[key];
    for (key in options || {}) opts[key] = options[key];
    this.url = url;
    this.options = opts;
    this.status = "connecting";
    this.lastEventId = null;
    this.attempts = 0;
    this.onevent = null;
    this.onstatus = null;
    this._source = null;
    this._timer = null;
    this._watchdog = null;
    this._closed = false;
    this._heartbeatMs = opts.heartbeatMs;
    this._storageKey = "sse-resilience:" + url;
    if (opts.persist && storage()) this.lastEventId = storage().getItem(this._storageKey);
    this._start();
  }

  ResilientEventSource.prototype.close = function () {
    this._closed = true;
    clearTimeout(this._timer);
    this._disarm();
    if (this._source) this._source.close();
    this._source = null;
  };

  ResilientEventSource.prototype._credentials = function () {
    return this.options.withCredentials ? "include" : "same-origin";
  };

  /**
   * Ask the server to stop this stream (not the same as close(), which only
   * disconnects this page). Resolves to the server's JSON answer: status
   * "cancelling" (202), the recover JSON of a stream that ended cancelled
   * (200), or a stream that had ended otherwise (409, with its status).
   * Rejects on 401/403/404 and network errors. Every follower, this one
   * included, then receives the "cancelled" event.
   */
  ResilientEventSource.prototype.cancel = function (reason) {
    var target = withParams(this.url.replace(/\/?(\?.*)?$/, "/cancel$1"), { token: this.options.token });
    var body = reason === undefined || reason === null ? {} : { reason: String(reason) };
    return root
      .fetch(target, {
        method: "POST",
        credentials: this._credentials(),
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      })
      .then(function (response) {
        if (response.status >= 400 && response.status !== 409) {
          throw new Error("cancel refused: " + response.status);
        }
        return response.json();
      });
  };

  ResilientEventSource.prototype._setStatus = function (status) {
    if (this.status === status) return;
    this.status = status;
    if (this.onstatus) this.onstatus(status);
  };

  ResilientEventSource.prototype._emit = function (event) {
    if (this.onevent) this.onevent(event);
  };

  ResilientEventSource.prototype._finish = function (status) {
    this.close();
    if (this.options.persist && storage()) storage().removeItem(this._storageKey);
    this._setStatus(status);
  };

  /**
   * Ask /recover. Resolve to "ended" (the stream ended; its terminal event was
   * delivered if `deliver`), "fatal" (401/403/404), "active" or "unknown".
   */
  ResilientEventSource.prototype._recover = function (deliver) {
    var self = this;
    var target = withParams(this.url.replace(/\/?(\?.*)?$/, "/recover$1"), {
      token: this.options.token,
    });
    var init = { credentials: this._credentials() };
    return root
      .fetch(target, init)
      .then(function (response) {
        if (FATAL_STATUS[response.status]) return "fatal";
        if (!response.ok) return "unknown"; // 503 and friends: try again later
        return response.json().then(function (body) {
          if (!TERMINAL[body.status]) return "active";
          if (!deliver) return body.eventId === self.lastEventId ? "have-end:" + body.status : "ended";
          if (self._closed) return "ended";
          self._emit({ id: body.eventId, type: body.terminalEventType, data: body.terminalEventData });
          self._finish(TERMINAL[body.status]);
          return "ended";
        });
      })
      .catch(function () {
        return "unknown"; // network down: try again later
      });
  };

  ResilientEventSource.prototype._start = function () {
    var self = this;
    // With a position, connect: the server replays what this client lacks.
    if (this.lastEventId) return this._connect();
    this._recover(true).then(function (state) {
      if (self._closed || state === "ended") return;
      if (state === "fatal") return self._finish("error");
      if (state === "unknown") return self._retry();
      self._connect();
    });
  };

  ResilientEventSource.prototype._connect = function () {
    var self = this;
    var source = new root.EventSource(
      withParams(this.url, {
        lastEventId: this.lastEventId,
        token: this.options.token,
        from: this.lastEventId ? null : this.options.from,
      }),
      { withCredentials: this.options.withCredentials }
    );
    var opened = false;
    this._source = source;
    this._arm();
    source.onopen = function () {
      opened = true;
      self._arm();
    };
    source.addEventListener("heartbeat", function () {
      self._arm();
    });
    source.onmessage = function (message) {
      self._arm();
      var envelope;
      try {
        envelope = JSON.parse(message.data);
      } catch (e) {
        return; // not ours
      }
      if (envelope.type === "connected") {
        if (envelope.heartbeatMs) self._heartbeatMs = envelope.heartbeatMs;
        self.attempts = 0; // the server accepted this connection
        self._setStatus("connected");
        return;
      }
      if (message.lastEventId) {
        self.lastEventId = message.lastEventId;
        if (self.options.persist && storage()) storage().setItem(self._storageKey, self.lastEventId);
      }
      self._emit({ id: message.lastEventId || null, type: envelope.type, data: envelope.data });
      if (TERMINAL[envelope.type]) self._finish(TERMINAL[envelope.type]);
    };
    source.onerror = function () {
      if (self._source !== source) return;
      source.close();
      self._source = null;
      if (opened || !self.lastEventId) return self._retry(); // _start recovers
      // Refused before opening: learn the status EventSource hides.
      self._disarm();
      self._recover(false).then(function (state) {
        if (self._closed) return;
        if (state === "fatal") return self._finish("error");
        // A 204: this client has the terminal event already.
        if (state.indexOf("have-end:") === 0) return self._finish(TERMINAL[state.slice(9)]);
        self._retry();
      });
    };
  };

  ResilientEventSource.prototype._retry = function () {
    var self = this;
    this._disarm();
    if (this._closed) return;
    if (this.attempts >= this.options.maxAttempts) return this._finish("error");
    this._setStatus("reconnecting");
    var delay = backoffDelay(this.attempts, this.options.baseDelayMs, this.options.maxDelayMs, this.options.random);
    this.attempts += 1;
    this._timer = setTimeout(function () {
      self._start();
    }, delay);
  };

  ResilientEventSource.prototype._arm = function () {
    var self = this;
    this._disarm();
    this._watchdog = setTimeout(function () {
      if (!self._source) return;
      self._source.close(); // silent too long: a half-open connection
      self._source = null;
      self._retry();
    }, this._heartbeatMs * this.options.watchdogFactor);
  };

  ResilientEventSource.prototype._disarm = function () {
    clearTimeout(this._watchdog);
    this._watchdog = null;
  };

  /**
   * Find the signed-in user's latest stream of `key` (GET <prefix>/keys/<key>).
   * Resolves to its recover JSON (with streamId), or null when there is none.
   */
  ResilientEventSource.findKey = function (prefix, key, options) {
    var opts = options || {};
    var target = prefix.replace(/\/$/, "") + "/keys/" + encodeURIComponent(key);
    return root
      .fetch(target, { credentials: opts.withCredentials ? "include" : "same-origin" })
      .then(function (response) {
        if (response.status === 204) return null;
        if (!response.ok) throw new Error("key lookup refused: " + response.status);
        return response.json();
      });
  };

  /**
   * Follow the latest stream of `key`: lookup, then recover (an ended stream
   * delivers its end at once), then follow. Resolves to the source, or null
   * when the key has no stream.
   */
  ResilientEventSource.openKey = function (prefix, key, options) {
    return ResilientEventSource.findKey(prefix, key, options).then(function (found) {
      if (!found) return null;
      var url = prefix.replace(/\/$/, "") + "/streams/" + encodeURIComponent(found.streamId);
      return new ResilientEventSource(url, options);
    });
  };

  var api = { ResilientEventSource: ResilientEventSource, backoffDelay: backoffDelay, DEFAULTS: DEFAULTS };
  root.SSEResilience = api;
  if (typeof module === "object" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
