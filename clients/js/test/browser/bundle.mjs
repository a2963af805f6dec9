// Bundles the browser test pages from the package itself (its "exports"),
// with real React and the real AI SDK: node test/browser/bundle.mjs <outdir>
import * as esbuild from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) throw new Error("usage: node bundle.mjs <outdir>");
await esbuild.build({
  entryPoints: [join(here, "react-app.tsx"), join(here, "chat-app.tsx")],
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  jsx: "automatic",
  target: "es2020",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});
