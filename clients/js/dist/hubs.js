// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { MultiHub } from "./hub.js";
import { TabShare } from "./share.js";
const hubs = /* @__PURE__ */ new Map();
function hubFor(prefix, options) {
  const name = [prefix, options.withCredentials, options.shareAcrossTabs, options.multiplex].join("|");
  let hub = hubs.get(name);
  if (!hub) {
    const canShare = typeof BroadcastChannel !== "undefined" && typeof navigator !== "undefined" && !!navigator.locks;
    hub = options.shareAcrossTabs && canShare ? new TabShare(prefix, options) : new MultiHub(prefix, options, options.multiplex === true);
    hubs.set(name, hub);
  }
  return hub;
}
export {
  hubFor
};
