// Bundles the browser test pages from the package itself (its "exports"),
// with real React and the real AI SDK: node test/browser/bundle.mjs <outdir>
// Each page is bundled twice: for production, and for development
// (<name>-dev.js), where React's <StrictMode> double-mounts as it does in a
// new app under development.
import * as esbuild from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) throw new Error("usage: node bundle.mjs <outdir>");
const common = {
  bundle: true,
  format: "iife",
  jsx: "automatic",
  target: "es2020",
  logLevel: "warning",
};
await esbuild.build({
  ...common,
  entryPoints: [join(here, "react-app.tsx"), join(here, "chat-app.tsx")],
  outdir,
  minify: true,
  define: { "process.env.NODE_ENV": '"production"' },
});
await esbuild.build({
  ...common,
  entryPoints: [join(here, "react-app.tsx"), join(here, "chat-app.tsx")],
  outdir,
  entryNames: "[name]-dev",
  define: { "process.env.NODE_ENV": '"development"' },
});
