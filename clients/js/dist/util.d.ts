/** Small pieces shared by the single-stream source and the multiplexing hub. */
import type { SourceOptions, Status, TokenSource } from "./types.js";
/** Terminal event types and the status each ends a source with. */
export declare const TERMINAL: Record<string, Status>;
/** Statuses the /recover status code maps to "give up". */
export declare const FATAL_STATUS: Record<number, true>;
/** The defaults of every option (see {@link SourceOptions}). */
export declare const DEFAULTS: Required<Omit<SourceOptions, "token" | "getToken" | "from" | "lastEventId">> & {
    token: string | null;
    getToken: TokenSource | null;
    from: SourceOptions["from"];
    lastEventId: string | null;
};
export type Options = typeof DEFAULTS;
/** Merge options over the defaults. */
export declare function withDefaults(options?: SourceOptions): Options;
/** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)] ms. */
export declare function backoffDelay(attempt: number, baseMs: number, capMs: number, random?: () => number): number;
/** `url` with the query parameters that have a value appended. */
export declare function withParams(url: string, params: Record<string, string | null | undefined>): string;
/** `<stream url>/<what>`, keeping the stream URL's query. */
export declare function subResource(url: string, what: string): string;
/** The page's sessionStorage, or null where it is disabled. */
export declare function storage(): Storage | null;
/** Event ids `<ms>-<n>` as a pair of integers; null if malformed. */
export declare function parseId(id: string | null | undefined): [number, number] | null;
/** True if event id `a` comes after `b` in its stream (a null `b` is before everything). */
export declare function isAfter(a: string | null | undefined, b: string | null | undefined): boolean;
/** The prefix and stream id of `<prefix>/streams/<id>`, or null. */
export declare function splitStreamUrl(url: string): {
    prefix: string;
    streamId: string;
} | null;
/** Ask a token source, if any; fall back to the fixed token. */
export declare function askToken(options: Options): Promise<string | null>;
/** Run `listener` on the page's wake-up signals (online, visible, pageshow); returns the remover. */
export declare function onWakeUp(listener: () => void): () => void;
