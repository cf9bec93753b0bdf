#!/usr/bin/env node
// Compressed images against qemu-img (issue 17): reading compressed qcow2 (zlib, zstd) and
// streamOptimized VMDK into raw, and writing them with `convert -c` / subformat=streamOptimized.
//
//   node bench/compressed.mjs [--size 1G | --quick] [--rounds 5] [--cases a,b] [--dir D]
//                             [--vdisk dist/cli/main.js] [--keep] [--list]
//
// Method: a raw image of --size bytes, every 64 KiB cluster filled with data that deflates to
// about half (runs of repeated random bytes) except one in four left zero; qemu-img makes the
// compressed inputs from it once (zlib qcow2, zstd qcow2, streamOptimized vmdk). Each case then
// runs --rounds timed rounds of one vdisk and one qemu-img conversion of the same input, qemu-img
// first in even rounds, outputs on tmpfs and deleted between runs; the first vdisk output is
// checked with `qemu-img compare` against the raw image. Reported per case: median wall seconds
// and their ratio (vdisk/qemu-img), median CPU seconds, vdisk's peak RSS.
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDir, gib, haveQemuImg, loadLine, median, parseArgs, parseSize, run, timed } from "./lib/workload.mjs";

const LABEL = "compressed bench";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = parseArgs();
const SIZE = parseSize(args.get("size", args.has("quick") ? "256M" : "1G"));
const ROUNDS = Math.max(1, Number(args.get("rounds", "5")) || 1);
const VDISK = args.get("vdisk", join(root, "dist", "cli", "main.js"));
const KEEP = args.has("keep");

const INPUTS = {
  raw: { fmt: "raw" },
  zlib: { fmt: "qcow2", make: ["-c", "-O", "qcow2"] },
  zstd: { fmt: "qcow2", make: ["-c", "-O", "qcow2", "-o", "compression_type=zstd"] },
  stream: { fmt: "vmdk", make: ["-O", "vmdk", "-o", "subformat=streamOptimized"] },
};

const CASES = [
  { id: "zlib-raw", src: "zlib", args: ["-O", "raw"], goal: "≤ 1.0" },
  { id: "zstd-raw", src: "zstd", args: ["-O", "raw"], goal: "≤ 1.0" },
  { id: "raw-zlib", src: "raw", args: ["-c", "-O", "qcow2"], goal: "≤ 1.0" },
  { id: "raw-zstd", src: "raw", args: ["-c", "-O", "qcow2", "-o", "compression_type=zstd"], goal: "≤ 1.0" },
  { id: "stream-raw", src: "stream", args: ["-O", "raw"], goal: "≤ 1.0" },
  { id: "raw-stream", src: "raw", args: ["-O", "vmdk", "-o", "subformat=streamOptimized"], goal: "≤ 1.0" },
];

if (args.has("list")) {
  for (const c of CASES) console.log(`${c.id.padEnd(11)} ${INPUTS[c.src].fmt} (${c.src}) → convert ${c.args.join(" ")}`);
  process.exit(0);
}
if (!haveQemuImg(LABEL)) process.exit(0);
const wanted = args.get("cases", "").split(",").filter(Boolean);
const cases = wanted.length ? CASES.filter((c) => wanted.some((w) => c.id.includes(w))) : CASES;

/** The raw input: 3 of 4 clusters hold runs of repeated random bytes (deflate to about half). */
function writeCompressibleRaw(path, size) {
  let s = 0x2545f491;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const fd = openSync(path, "w");
  const cluster = Buffer.alloc(65536);
  try {
    for (let off = 0, k = 0; off < size; off += cluster.length, k++) {
      if (k % 4 === 3) continue; // a hole
      for (let i = 0; i < cluster.length; ) {
        const v = next();
        const n = v & 1 ? 1 : (v >>> 8) & 15;
        cluster.fill((v >>> 16) & 0xff, i, Math.min(cluster.length, i + Math.max(1, n)));
        i += Math.max(1, n);
      }
      writeSync(fd, cluster, 0, Math.min(cluster.length, size - off), off);
    }
  } finally {
    closeSync(fd);
  }
  run("truncate", ["-s", String(size), path]);
}

const { path: dir, note } = benchDir({ dir: args.get("dir", undefined), need: SIZE * 3, prefix: "vdisk-compressed" });
if (note) console.log(note);
console.log(`${LABEL}: ${gib(SIZE)}, ${ROUNDS} rounds, ${loadLine()}`);
const files = { raw: join(dir, "in.raw") };
writeCompressibleRaw(files.raw, SIZE);
for (const [name, inp] of Object.entries(INPUTS)) {
  if (!inp.make) continue;
  files[name] = join(dir, `in-${name}.${inp.fmt}`);
  run("qemu-img", ["convert", "-f", "raw", ...inp.make, files.raw, files[name]]);
}

const rows = [];
try {
  for (const c of cases) {
    const inp = INPUTS[c.src];
    const out = join(dir, `out-${c.id}`);
    const vdiskArgs = [VDISK, "convert", "-f", inp.fmt, ...c.args, files[c.src], out];
    const qemuArgs = ["convert", "-f", inp.fmt, ...c.args, files[c.src], out];
    // Warm-up and correctness: vdisk's output equals the raw image.
    await timed(process.execPath, vdiskArgs);
    run("qemu-img", ["compare", "-f", "raw", files.raw, out]);
    rmSync(out, { force: true });
    const v = [];
    const q = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ["q", "v"] : ["v", "q"];
      for (const who of order) {
        const res = who === "v" ? await timed(process.execPath, vdiskArgs) : await timed("qemu-img", qemuArgs);
        (who === "v" ? v : q).push(res);
        rmSync(out, { force: true });
      }
    }
    const mv = median(v.map((x) => x.secs));
    const mq = median(q.map((x) => x.secs));
    rows.push({
      id: c.id,
      vdisk: mv,
      qemu: mq,
      ratio: mv / mq,
      cpu: median(v.map((x) => x.cpu)) / median(q.map((x) => x.cpu)),
      rss: Math.max(...v.map((x) => x.peakKiB)) / 1024,
      goal: c.goal,
    });
    const row = rows[rows.length - 1];
    console.log(
      `${c.id.padEnd(11)} qemu-img ${mq.toFixed(2)} s  vdisk ${mv.toFixed(2)} s  ratio ${row.ratio.toFixed(2)}×  ` +
        `CPU ratio ${row.cpu.toFixed(2)}×  vdisk peak RSS ${row.rss.toFixed(0)} MiB  (goal ${c.goal})`,
    );
  }
} finally {
  if (!KEEP) rmSync(dir, { recursive: true, force: true });
}
if (args.has("json")) console.log(JSON.stringify(rows));
