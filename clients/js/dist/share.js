// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { MultiHub } from "./hub.js";
import { askToken, TERMINAL, withDefaults } from "./util.js";
class RemoteMember {
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
}
class TabShare {
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
    this.hub?.wake();
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
}
export {
  TabShare
};
