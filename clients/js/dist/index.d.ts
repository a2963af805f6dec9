/**
 * flask-sse-resilience's browser client. See docs/browser-client.rst for a
 * guide and docs/protocol.rst for the wire format it speaks.
 */
export { ResilientEventSource } from "./source.js";
export { findKey, streamUrl } from "./requests.js";
export { MultiHub } from "./hub.js";
export { TabShare } from "./share.js";
export { backoffDelay, DEFAULTS, isAfter } from "./util.js";
export type { Carrier, Member } from "./hub.js";
export type { CancelAnswer, RecoverInfo, SourceOptions, StartFrom, Status, StreamEvent, TokenSource, } from "./types.js";
