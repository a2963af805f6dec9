// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { ResilientEventSource } from "./source.js";
import { findKey, streamUrl } from "./requests.js";
import { MultiHub } from "./hub.js";
import { TabShare } from "./share.js";
import { backoffDelay, DEFAULTS, isAfter } from "./util.js";
export {
  DEFAULTS,
  MultiHub,
  ResilientEventSource,
  TabShare,
  backoffDelay,
  findKey,
  isAfter,
  streamUrl
};
