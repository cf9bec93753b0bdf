#!/usr/bin/env node
// Bundle sizes a web page pays for vdisk: each case is a tiny page module bundled by esbuild
// (minified, browser condition) against the built package as an installed dependency would be
// (node_modules/vdisk → this repository, so package.json's exports and sideEffects apply).
//   npm run size            prints the table
//   npm run size -- --check  also exits 1 when a budget is exceeded
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const esbuild = await import("esbuild");

/** [label, page source, gzip budget in KB or undefined]. */
const CASES = [
  ["read-only, all formats: import { openImage } from 'vdisk'", `import { openImage } from "vdisk"; globalThis.x = openImage;`, 150],
  [
    "read-only, qcow2 only: vdisk/lite + qcow2Driver",
    `import { openImage, qcow2Driver } from "vdisk/lite"; globalThis.x = (b) => openImage(b, { drivers: [qcow2Driver] });`,
    60,
  ],
  [
    "read-only, raw only: vdisk/lite + rawDriver",
    `import { openImage, rawDriver } from "vdisk/lite"; globalThis.x = (b) => openImage(b, { drivers: [rawDriver] });`,
    60,
  ],
  [
    "convert + create, all formats (no zstd encoder)",
    `import { openImage, createImage, convertImage } from "vdisk"; globalThis.x = [openImage, createImage, convertImage];`,
    undefined,
  ],
  ["the whole browser entry: import * as vdisk from 'vdisk'", `import * as vdisk from "vdisk"; globalThis.x = vdisk;`, undefined],
  ["the zstd encoder alone: vdisk/zstd-encoder", `import { loadZstdCompressor } from "vdisk/zstd-encoder"; globalThis.x = loadZstdCompressor;`, undefined],
];

const work = mkdtempSync(join(tmpdir(), "vdisk-size-"));
let failed = false;
try {
  mkdirSync(join(work, "node_modules"));
  symlinkSync(root, join(work, "node_modules", "vdisk"), "dir");
  const rows = [];
  for (const [label, source, budget] of CASES) {
    const entry = join(work, `page-${rows.length}.js`);
    writeFileSync(entry, source);
    let result;
    try {
      result = await esbuild.build({
        entryPoints: [entry],
        bundle: true,
        minify: true,
        format: "esm",
        platform: "browser",
        target: "es2022",
        conditions: ["browser"],
        write: false,
        logLevel: "silent",
        absWorkingDir: work,
      });
    } catch (e) {
      rows.push({ label, error: e.message.split("\n")[0] });
      failed = true;
      continue;
    }
    const code = result.outputFiles[0].contents;
    const gz = gzipSync(code, { level: 9 }).length;
    const over = budget !== undefined && gz / 1000 > budget;
    if (over) failed = true;
    rows.push({ label, min: code.length, gz, budget, over });
  }
  const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
  console.log("bundle (esbuild --minify, browser)".padEnd(66) + "minified".padStart(11) + "gzip".padStart(11) + "  budget (gzip)");
  for (const r of rows) {
    if (r.error) console.log(`${r.label.padEnd(66)}  FAILED: ${r.error}`);
    else console.log(r.label.padEnd(66) + kb(r.min).padStart(11) + kb(r.gz).padStart(11) + (r.budget ? `  ≤ ${r.budget} KB ${r.over ? "OVER" : "ok"}` : ""));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failed && process.argv.includes("--check")) process.exit(1);
