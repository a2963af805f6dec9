/** The client's plain HTTP requests besides the stream itself (docs/protocol.rst): recover, cancel, keys. */

import type { CancelAnswer, RecoverInfo, SourceOptions } from "./types.js";
import { subResource, withParams } from "./util.js";

/** `<prefix>/streams/<id>`. */
export function streamUrl(prefix: string, streamId: string): string {
  return prefix.replace(/\/$/, "") + "/streams/" + encodeURIComponent(streamId);
}

/**
 * Find the signed-in user's latest stream of `key` (GET <prefix>/keys/<key>).
 * Resolves to its recover JSON (with streamId), or null when there is none;
 * rejects when the lookup is refused (401, 400) or the network fails.
 */
export async function findKey(prefix: string, key: string, options?: SourceOptions): Promise<RecoverInfo | null> {
  const target = prefix.replace(/\/$/, "") + "/keys/" + encodeURIComponent(key);
  const response = await fetch(target, { credentials: options?.withCredentials ? "include" : "same-origin" });
  if (response.status === 204) return null;
  if (!response.ok) throw new Error("key lookup refused: " + response.status);
  return (await response.json()) as RecoverInfo;
}

/** `GET <stream>/recover`: its status and JSON, or null when the network failed. */
export async function recover(
  url: string,
  token: string | null,
  credentials: RequestCredentials,
): Promise<{ status: number; body: RecoverInfo | null } | null> {
  try {
    const response = await fetch(withParams(subResource(url, "recover"), { token }), { credentials });
    return { status: response.status, body: response.ok ? ((await response.json()) as RecoverInfo) : null };
  } catch {
    return null;
  }
}

/**
 * `POST <stream>/cancel` with the reason: resolves to the server's JSON (202
 * cancelling, 200 ended cancelled, 409 ended otherwise); rejects on another
 * refusal or a network error.
 */
export async function cancelStream(
  url: string,
  token: string | null,
  credentials: RequestCredentials,
  reason?: string | null,
): Promise<CancelAnswer> {
  const body = reason === undefined || reason === null ? {} : { reason: String(reason) };
  const response = await fetch(withParams(subResource(url, "cancel"), { token }), {
    method: "POST",
    credentials,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status >= 400 && response.status !== 409) throw new Error("cancel refused: " + response.status);
  return (await response.json()) as CancelAnswer;
}
