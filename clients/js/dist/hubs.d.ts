/**
 * The page's carrier for each prefix: one {@link MultiHub} per prefix,
 * credentials mode and sharing mode, or with `shareAcrossTabs` a
 * {@link TabShare}. Its own module so that neither of the two imports the
 * other's chooser (the tab share carries its streams on a hub of its own).
 */
import { type Hub } from "./hub.js";
import type { Options } from "./util.js";
/**
 * The page's hub for `prefix` (one per prefix, credentials mode and sharing
 * mode): a {@link MultiHub}, or with `shareAcrossTabs` a {@link TabShare}.
 */
export declare function hubFor(prefix: string, options: Options): Hub;
