/** The client's plain HTTP requests besides the stream itself (docs/protocol.rst): recover, cancel, keys. */
import type { CancelAnswer, RecoverInfo, SourceOptions } from "./types.js";
/** `<prefix>/streams/<id>`. */
export declare function streamUrl(prefix: string, streamId: string): string;
/**
 * Find the signed-in user's latest stream of `key` (GET <prefix>/keys/<key>).
 * Resolves to its recover JSON (with streamId), or null when there is none;
 * rejects when the lookup is refused (401, 400) or the network fails.
 */
export declare function findKey(prefix: string, key: string, options?: SourceOptions): Promise<RecoverInfo | null>;
/** `GET <stream>/recover`: its status and JSON, or null when the network failed. */
export declare function recover(url: string, token: string | null, credentials: RequestCredentials): Promise<{
    status: number;
    body: RecoverInfo | null;
} | null>;
/**
 * `POST <stream>/cancel` with the reason: resolves to the server's JSON (202
 * cancelling, 200 ended cancelled, 409 ended otherwise); rejects on another
 * refusal or a network error.
 */
export declare function cancelStream(url: string, token: string | null, credentials: RequestCredentials, reason?: string | null): Promise<CancelAnswer>;
