// Builds the package (dist/) and the files the blueprint serves
// (flask_sse_resilience/static/) from src/, the one source of truth.
//   node build.mjs          write them
//   node build.mjs --check  build into a temporary folder and fail if a
//                           committed file differs (a test runs this)
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const statics = join(here, "../../flask_sse_resilience/static");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "sse-js-")) : here;
const dist = join(out, "dist");
const served = check ? join(out, "static") : statics;
const banner = "// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.";
const entries = ["index", "source", "requests", "hub", "hubs", "share", "util", "types", "react", "ai"];

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
mkdirSync(served, { recursive: true });

// The package: one ES module per source file (consumers bundle), plus types.
await esbuild.build({
  entryPoints: entries.map((name) => join(here, "src", name + ".ts")),
  outdir: dist,
  format: "esm",
  target: "es2020",
  bundle: false,
  banner: { js: banner },
  logLevel: "warning",
});
execFileSync(join(here, "node_modules/.bin/tsc"), ["-p", join(here, "tsconfig.json"), "--emitDeclarationOnly", "--declaration", "--outDir", dist], { stdio: "inherit" });

// What the blueprint serves: a classic script (window.SSEResilience), an ES
// module, and the React hook importing that module.
const common = { bundle: true, target: "es2017", banner: { js: banner }, logLevel: "warning" };
await esbuild.build({ ...common, entryPoints: [join(here, "src/global.ts")], outfile: join(served, "sse-resilience.js"), format: "iife" });
await esbuild.build({ ...common, entryPoints: [join(here, "src/index.ts")], outfile: join(served, "sse-resilience.mjs"), format: "esm" });
const shareModule = {
  name: "share-module",
  setup(build) {
    build.onResolve({ filter: /^\.\/(source|requests)\.js$/ }, () => ({ path: "./sse-resilience.mjs", external: true }));
  },
};
await esbuild.build({
  ...common,
  entryPoints: [join(here, "src/react.ts")],
  outfile: join(served, "use-resilient-sse.js"),
  format: "esm",
  external: ["react"],
  plugins: [shareModule],
});

if (check) {
  const stale = [];
  const compare = (built, committed) => {
    for (const name of readdirSync(built)) {
      const mine = join(committed, name);
      if (!existsSync(mine) || !readFileSync(mine).equals(readFileSync(join(built, name)))) stale.push(relative(process.cwd(), mine));
    }
  };
  compare(dist, join(here, "dist"));
  compare(served, statics);
  rmSync(out, { recursive: true, force: true });
  if (stale.length) {
    console.error("stale built files (run `npm run build` in clients/js and commit):\n  " + stale.join("\n  "));
    process.exit(1);
  }
  console.log("built files are up to date");
}
