// ES module entry: loads the classic build (which sets globalThis.SSEResilience)
// and re-exports it, so the logic lives in one file.
import "./sse-resilience.js";

const api = globalThis.SSEResilience;
export const ResilientEventSource = api.ResilientEventSource;
export const backoffDelay = api.backoffDelay;
export const DEFAULTS = api.DEFAULTS;
export default api;
