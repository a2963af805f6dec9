/**
 * The page's carrier for each prefix: one {@link MultiHub} per prefix,
 * credentials mode and sharing mode, or with `shareAcrossTabs` a
 * {@link TabShare}. Its own module so that neither of the two imports the
 * other's chooser (the tab share carries its streams on a hub of its own).
 */

import { MultiHub, type Hub } from "./hub.js";
import { TabShare } from "./share.js";
import type { Options } from "./util.js";

const hubs = new Map<string, Hub>();

/**
 * The page's hub for `prefix` (one per prefix, credentials mode and sharing
 * mode): a {@link MultiHub}, or with `shareAcrossTabs` a {@link TabShare}.
 */
export function hubFor(prefix: string, options: Options): Hub {
  const name = [prefix, options.withCredentials, options.shareAcrossTabs, options.multiplex].join("|");
  let hub = hubs.get(name);
  if (!hub) {
    const canShare = typeof BroadcastChannel !== "undefined" && typeof navigator !== "undefined" && !!navigator.locks;
    hub =
      options.shareAcrossTabs && canShare
        ? new TabShare(prefix, options)
        : new MultiHub(prefix, options, options.multiplex === true);
    hubs.set(name, hub);
  }
  return hub;
}
