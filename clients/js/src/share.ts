/**
 * One connection per browser: every tab of the origin shares the streams it
 * follows over one multiplexed response held by a leader tab.
 *
 * The leader is whichever tab holds a Web Lock named after the prefix; the
 * others wait for it, so when the leader's tab closes the browser hands the
 * lock (and the connection) to the next tab at once. Tabs talk over a
 * BroadcastChannel: a tab announces the streams its sources follow, each with
 * its own cursor; the leader carries them on its hub and broadcasts their
 * events; each tab hands them to its own sources, which drop what they have
 * already. A new leader asks every tab to announce again, so it resumes every
 * stream from the cursors the tabs hold: nothing is lost across a handover.
 */

import { MultiHub, type Carrier, type Member } from "./hub.js";
import type { Status } from "./types.js";
import { askToken, TERMINAL, withDefaults, type Options } from "./util.js";

type Message =
  | { kind: "join"; tab: string; stream: string; cursor: string | null; token: string | null }
  | { kind: "leave"; tab: string; stream: string }
  | { kind: "event"; stream: string; envelope: { type: string; data?: unknown; eventId?: string | null } }
  | { kind: "status"; stream: string; status: Status }
  | { kind: "leader"; tab: string };

/** A source of another tab, as the leader's hub sees it. */
class RemoteMember implements Member {
  status: Status = "connecting";
  readonly options: Options;

  constructor(
    private readonly share: TabShare,
    readonly tab: string,
    readonly streamId: string,
    public lastEventId: string | null,
    token: string | null,
  ) {
    this.options = withDefaults({ token });
  }

  _carry(): void {}

  _deliver(envelope: { type: string; data?: unknown; eventId?: string | null }): void {
    if (envelope.eventId) this.lastEventId = envelope.eventId;
    const end = TERMINAL[envelope.type];
    if (end) this.status = end;
    this.share.post({ kind: "event", stream: this.streamId, envelope });
  }

  _hubStatus(status: Status): void {
    this.status = status;
    this.share.post({ kind: "status", stream: this.streamId, status });
  }
}

/** A tab's part in sharing one connection among the origin's tabs. */
export class TabShare implements Carrier {
  /** True while this tab holds the connection. */
  leader = false;
  readonly tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
  private readonly local = new Set<Member>();
  private readonly remote = new Map<string, RemoteMember>();
  private readonly channel: BroadcastChannel;
  private hub: MultiHub | null = null;
  private _sent: Promise<void> = Promise.resolve();

  constructor(
    readonly prefix: string,
    private readonly options: Options,
  ) {
    const name = "sse-resilience:" + prefix;
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (message: MessageEvent<Message>) => this._receive(message.data);
    void navigator.locks.request(name, () => new Promise<void>(() => this._lead()));
    addEventListener("pagehide", () => {
      if (this.leader) return; // the lock goes with the page; the next leader asks again
      // At once: nothing queued runs once the page is gone.
      for (const member of this.local) {
        if (member.streamId) this.post({ kind: "leave", tab: this.tab, stream: member.streamId });
      }
    });
  }

  get connected(): boolean {
    return this.hub ? this.hub.connected : this.local.size > 0;
  }

  /** Share `member`'s stream with the other tabs (through the leader). */
  join(member: Member): void {
    this.local.add(member);
    member._carry(this);
    if (this.hub) this.hub.join(member);
    else this._announce(member);
  }

  /** Stop sharing `member`. */
  leave(member: Member): void {
    if (!this.local.delete(member)) return;
    if (this.hub) this.hub.leave(member);
    else if (member.streamId && ![...this.local].some((m) => m.streamId === member.streamId)) {
      this._leave(member.streamId);
    }
  }

  wake(): void {
    this.hub?.wake();
  }

  /** @internal Broadcast to the other tabs. */
  post(message: Message): void {
    this.channel.postMessage(message);
  }

  private _announce(member: Member): void {
    const stream = member.streamId;
    if (!stream) return;
    // The member's own token source is asked here, in its tab; joins and
    // leaves go out in the order they were made.
    this._sent = this._sent
      .then(() => askToken(member.options))
      .catch(() => member.options.token)
      .then((token) => this.post({ kind: "join", tab: this.tab, stream, cursor: member.lastEventId, token }));
  }

  private _leave(stream: string): void {
    this._sent = this._sent.then(() => this.post({ kind: "leave", tab: this.tab, stream }));
  }

  /** This tab got the lock: hold the connection for every tab. */
  private _lead(): void {
    this.leader = true;
    this.hub = new MultiHub(this.prefix, this.options, true);
    for (const member of this.local) this.hub.join(member);
    this.post({ kind: "leader", tab: this.tab });
  }

  private _receive(message: Message): void {
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
