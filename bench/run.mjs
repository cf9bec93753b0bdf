#!/usr/bin/env node
// `npm run bench`: runs every benchmark in bench/ (each *.mjs but this one), one after another,
// passing on the arguments given after `npm run bench --` (e.g. --quick). Run `npm run build` first.
// Today: convert.mjs (qcow2↔raw), formats.mjs (vhdx, qed, fvd, gow2, vmdk, vpc, vdi — issues 3–5)
// kernel.mjs and nbd.mjs (vdisk serve against qemu-nbd, issue 12); `--only <prefix>` runs one.
// bench/lib/ holds shared code, not benchmarks.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const benches = readdirSync(here)
  .filter((f) => f.endsWith(".mjs") && f !== "run.mjs")
  .filter((f) => !only || f.startsWith(only))
  .sort();
let failed = 0;
for (const b of benches) {
  console.log(`\n=== bench/${b} ${args.join(" ")}`.trimEnd());
  const r = spawnSync(process.execPath, [join(here, b), ...args], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`bench/${b} failed (exit ${r.status ?? r.signal})`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
