/** The classic-script build: `window.SSEResilience`, served at <prefix>/static/sse-resilience.js. */
import * as api from "./index.js";

(globalThis as unknown as { SSEResilience: typeof api }).SSEResilience = api;
