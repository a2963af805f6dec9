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
import { type Carrier, type Member } from "./hub.js";
import type { Status } from "./types.js";
import { type Options } from "./util.js";
type Message = {
    kind: "join";
    tab: string;
    stream: string;
    cursor: string | null;
    token: string | null;
} | {
    kind: "leave";
    tab: string;
    stream: string;
} | {
    kind: "event";
    stream: string;
    envelope: {
        type: string;
        data?: unknown;
        eventId?: string | null;
    };
} | {
    kind: "status";
    stream: string;
    status: Status;
} | {
    kind: "leader";
    tab: string;
};
/** A tab's part in sharing one connection among the origin's tabs. */
export declare class TabShare implements Carrier {
    readonly prefix: string;
    private readonly options;
    /** True while this tab holds the connection. */
    leader: boolean;
    readonly tab: string;
    private readonly local;
    private readonly remote;
    private readonly channel;
    private hub;
    private _sent;
    constructor(prefix: string, options: Options);
    get connected(): boolean;
    /** Share `member`'s stream with the other tabs (through the leader). */
    join(member: Member): void;
    /** Stop sharing `member`. */
    leave(member: Member): void;
    wake(): void;
    /** @internal Broadcast to the other tabs. */
    post(message: Message): void;
    private _announce;
    private _leave;
    /** This tab got the lock: hold the connection for every tab. */
    private _lead;
    private _receive;
}
export {};
