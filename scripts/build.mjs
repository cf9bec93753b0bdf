#!/usr/bin/env node
// Builds everything `npm install` (the `prepare` script) must produce, in order:
//   1. the Wasm kernel, embedded as a TS module under src/kernel/generated/ (needs asc);
//   2. dist/: tsc output and declarations for every entry (node, deno, browser, neutral, CLI);
//   3. dist/vdisk.browser.js: one ESM file for browsers, dependencies and wasm included, and its
//      declarations (the browser entry's: the bundle is that entry).
// Running it twice gives the same dist/: it starts from an empty dist/ so no stale file survives.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

/** Runs a Node script; on failure its own output has said why, so exit without a stack trace. */
function runNode(label, script, args = []) {
  try {
    execFileSync(process.execPath, [script, ...args], { cwd: root, stdio: "inherit" });
  } catch (e) {
    console.error(`build: ${label} failed${e.status ? ` (exit status ${e.status})` : `: ${e.message}`}`);
    process.exit(e.status || 1);
  }
}

// Kernel first: tsc compiles the module it generates.
const kernelScript = join(root, "scripts", "build-kernel.mjs");
if (existsSync(kernelScript)) runNode("kernel", kernelScript);

rmSync(dist, { recursive: true, force: true });
runNode("tsc", join(root, "node_modules", "typescript", "bin", "tsc"), ["-p", "tsconfig.json"]);

// esbuild's install script may be skipped (npm 11); its JS API still finds the platform binary.
const esbuild = await import("esbuild");
await esbuild.build({
  entryPoints: [join(root, "src", "browser.ts")],
  outfile: join(dist, "vdisk.browser.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  conditions: ["browser"],
  // Served as is to pages: small, but class and function names kept for errors and stacks.
  minify: true,
  keepNames: true,
  sourcemap: true,
  legalComments: "eof",
  logLevel: "warning",
});
// `import … from "vdisk/vdisk.browser.js"` gets the browser entry's types (package.json points here).
writeFileSync(
  join(dist, "vdisk.browser.d.ts"),
  "/** The prebuilt browser bundle: the browser entry (`vdisk` with the `browser` condition) in one file. */\n" +
    'export * from "./browser.js";\n',
);

// The CLI's commands as one file: the bin loads it instead of ~130 modules (≈60 ms faster start).
await esbuild.build({
  entryPoints: [join(root, "src", "cli", "run.ts")],
  outfile: join(dist, "cli", "run.bundle.js"),
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Less to parse at every start; names kept for --debug stacks.
  minify: true,
  keepNames: true,
  sourcemap: true,
  legalComments: "eof",
  logLevel: "warning",
});

const cli = join(dist, "cli", "main.js");
if (existsSync(cli)) chmodSync(cli, 0o755);
