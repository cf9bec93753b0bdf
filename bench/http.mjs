#!/usr/bin/env node
// Reading a qcow2 over HTTP on a high-latency link: `vdisk convert -O raw URL out.raw` against
// `qemu-img convert` (its curl driver) from the same local server, which waits --latency ms
// before every answer. Reports requests and median wall time of each over --rounds runs.
//   node bench/http.mjs [--size MiB] [--latency ms] [--rounds N] [--quick]
// Run `npm run build` first; needs qemu-img (with the curl block driver for its column).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRangeServer } from "./lib/range-server.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(`--${name}`) ? Number(argv[argv.indexOf(`--${name}`) + 1]) : dflt);
const quick = argv.includes("--quick");
const sizeMiB = arg("size", quick ? 64 : 256);
const latencyMs = arg("latency", 20);
const rounds = arg("rounds", quick ? 1 : 3);
const VDISK = join(root, "dist", "cli", "main.js");

function run(bin, args) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stderr }));
  });
}

const dir = mkdtempSync(join(tmpdir(), "vdisk-bench-http-"));
try {
  // Half data (a seeded pattern), half holes, in 4 MiB stripes.
  const raw = new Uint8Array(sizeMiB << 20);
  let x = 12345;
  for (let off = 0; off < raw.length; off += 8 << 20) {
    for (let i = off; i < Math.min(raw.length, off + (4 << 20)); i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      raw[i] = x >>> 24;
    }
  }
  writeFileSync(join(dir, "src.raw"), raw);
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", join(dir, "src.raw"), join(dir, "src.qcow2")]);
  const server = await startRangeServer(readFileSync(join(dir, "src.qcow2")), latencyMs);
  const tools = {
    vdisk: (out) => [process.execPath, [VDISK, "convert", "-f", "qcow2", "-O", "raw", server.url, out]],
    "qemu-img": (out) => ["qemu-img", ["convert", "-f", "qcow2", "-O", "raw", server.url, out]],
  };
  const results = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, cmd] of Object.entries(tools)) {
      const out = join(dir, `${name}.raw`);
      const [bin, args] = cmd(out);
      const before = server.stats.requests;
      const t0 = performance.now();
      // Asynchronously: the server answers from this process's event loop.
      const p = await run(bin, args);
      const ms = performance.now() - t0;
      rmSync(out, { force: true });
      if (p.status !== 0) {
        (results[name] ??= { failed: p.stderr.trim().split("\n")[0] });
        continue;
      }
      const entry = (results[name] ??= { ms: [], requests: 0 });
      entry.ms.push(ms);
      entry.requests = server.stats.requests - before;
    }
  }
  await server.close();
  const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  console.log(`HTTP convert of a ${sizeMiB} MiB qcow2 (half data) to raw, ${latencyMs} ms per request, ${rounds} round(s):`);
  for (const [name, r] of Object.entries(results)) {
    if (r.failed) console.log(`  ${name.padEnd(9)} failed: ${r.failed}`);
    else console.log(`  ${name.padEnd(9)} ${r.requests} requests, median ${(median(r.ms) / 1000).toFixed(2)} s`);
  }
  if (results.vdisk?.ms && results["qemu-img"]?.ms) {
    console.log(`  vdisk / qemu-img wall time: ${(median(results.vdisk.ms) / median(results["qemu-img"].ms)).toFixed(2)}×`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
