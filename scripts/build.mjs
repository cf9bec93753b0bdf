#!/usr/bin/env node
// Builds everything `npm install` (the `prepare` script) must produce, in order:
//   1. the Wasm kernel, embedded as a TS module under src/kernel/generated/ (needs asc);
//   2. dist/: declarations (tsc) and the entries and CLI as one esbuild build sharing chunks;
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
// Declarations only: the JavaScript is esbuild's (below), so the library ships once.
runNode("tsc", join(root, "node_modules", "typescript", "bin", "tsc"), ["-p", "tsconfig.json", "--emitDeclarationOnly"]);

// esbuild's install script may be skipped (npm 11); its JS API still finds the platform binary.
const esbuild = await import("esbuild");

// The library and the CLI as one build: every entry of package.json's "exports" and the bin
// are files of their own, the code they share is in dist/chunks/ — one copy of the library for
// the modules and the CLI alike (the CLI loads a handful of files instead of ~150: ≈2× faster
// start). Dependencies stay imports (npm installs them); not minified, so stacks read as the
// source does (a page's bundler minifies); no source maps (src/ is not shipped).
await esbuild.build({
  entryPoints: ["node", "deno", "browser", "index", "lite", "codec/zstd-encoder", "kernel/index", "cli/main", "cli/run"].map((e) =>
    join(root, "src", `${e}.ts`),
  ),
  outdir: dist,
  outbase: join(root, "src"),
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  packages: "external",
  external: ["node:*"],
  legalComments: "none",
  logLevel: "warning",
});

// dist/vdisk.browser.js: one file for a page without a bundler (dependencies, wasm and the zstd
// encoder included).
await esbuild.build({
  stdin: {
    contents: [
      'export * from "./src/browser.ts";',
      'import { setZstdEncoder } from "./src/codec/compression.ts";',
      'import { loadZstdCompressor } from "./src/codec/zstd-encoder.ts";',
      "setZstdEncoder(loadZstdCompressor);",
    ].join("\n"),
    resolveDir: root,
    sourcefile: "vdisk.browser.ts",
    loader: "ts",
  },
  outfile: join(dist, "vdisk.browser.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  conditions: ["browser"],
  // Served as is to pages: small, but class and function names kept for errors and stacks.
  minify: true,
  keepNames: true,
  legalComments: "eof",
  logLevel: "warning",
});

// `import … from "vdisk/vdisk.browser.js"` gets the browser entry's types (package.json points here).
writeFileSync(
  join(dist, "vdisk.browser.d.ts"),
  "/** The prebuilt browser bundle: the browser entry (`vdisk` with the `browser` condition) in one file. */\n" +
    'export * from "./browser.js";\n',
);

const cli = join(dist, "cli", "main.js");
if (existsSync(cli)) chmodSync(cli, 0o755);

// The web page (web/ → dist-web/), a static folder `npm run web` serves.
const { buildWeb } = await import("./build-web.mjs");
await buildWeb();
