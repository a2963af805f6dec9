// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { subResource, withParams } from "./util.js";
function streamUrl(prefix, streamId) {
  return prefix.replace(/\/$/, "") + "/streams/" + encodeURIComponent(streamId);
}
async function findKey(prefix, key, options) {
  const target = prefix.replace(/\/$/, "") + "/keys/" + encodeURIComponent(key);
  const response = await fetch(target, { credentials: options?.withCredentials ? "include" : "same-origin" });
  if (response.status === 204) return null;
  if (!response.ok) throw new Error("key lookup refused: " + response.status);
  return await response.json();
}
async function recover(url, token, credentials) {
  try {
    const response = await fetch(withParams(subResource(url, "recover"), { token }), { credentials });
    return { status: response.status, body: response.ok ? await response.json() : null };
  } catch {
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
export {
  cancelStream,
  findKey,
  recover,
  streamUrl
};
