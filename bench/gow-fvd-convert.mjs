#!/usr/bin/env node
// GOW/FVD convert benchmark (issue 4): `vdisk convert` raw→fvd (compact), raw→gow2 and back to
// raw, against `qemu-img convert` raw→qcow2 and qcow2→raw on the same input in the same run
// (qemu-img has no GOW or FVD driver, so qcow2 is the reference). Run `npm run build` first.
//
//   node bench/gow-fvd-convert.mjs [--size 4G] [--rounds 3] [--dir /dev/shm] [--vdisk dist/cli/main.js]
//
// Method (BENCHMARKING.md, "Convert"): a deterministic image of --size bytes, about half random
// data in runs of 1–64 clusters of 64 KiB and half zeros, written sparsely as raw. Each round runs
// every case once, outputs deleted between runs; reported: median wall time per case and its
// ratio to the qemu-img case of the same direction.
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const arg = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const parseSize = (t) => {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)$/i.exec(t);
  if (!m) throw new Error(`bad size ${t}`);
  return Math.floor(Number(m[1]) * 1024 ** " kmgt".indexOf(m[2].toLowerCase() || " "));
};
const SIZE = parseSize(arg("size", "4G"));
const ROUNDS = Number(arg("rounds", "3"));
const VDISK = arg("vdisk", join(root, "dist", "cli", "main.js"));
const CLUSTER = 65536;

if (spawnSync("qemu-img", ["--version"]).status !== 0) {
  console.error("gow/fvd convert bench: qemu-img not found; install qemu-utils. Skipping.");
  process.exit(0);
}
if (!existsSync(VDISK)) {
  console.error(`gow/fvd convert bench: ${VDISK} not found; run npm run build first.`);
  process.exit(1);
}
const free = (d) => {
  try {
    const s = statfsSync(d);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
};
let dir = arg("dir", free("/dev/shm") >= SIZE * 2.5 ? "/dev/shm" : tmpdir());
dir = join(dir, `vdisk-gowfvd-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });

let s0 = 0x9e3779b9, s1 = 0x243f6a88, s2 = 0xb7e15162, s3 = 0x12345678;
function next() {
  const t = s0 ^ (s0 << 11);
  s0 = s1; s1 = s2; s2 = s3;
  s3 = (s3 ^ (s3 >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
  return s3;
}
const runLength = () => 1 + (next() % 64);
const raw = join(dir, "src.raw");
{
  const fd = openSync(raw, "w");
  ftruncateSync(fd, SIZE);
  const clusters = Math.ceil(SIZE / CLUSTER);
  const buf = new Uint8Array(64 * CLUSTER);
  const words = new Uint32Array(buf.buffer);
  let data = 0;
  for (let c = 0; c < clusters; ) {
    const n = Math.min(runLength(), clusters - c);
    const len = Math.min(n * CLUSTER, SIZE - c * CLUSTER);
    for (let i = 0; i < len >>> 2; i++) words[i] = next();
    writeSync(fd, buf, 0, len, c * CLUSTER);
    data += len;
    c += n + runLength();
  }
  closeSync(fd);
  console.log(`image: ${(SIZE / 2 ** 30).toFixed(2)} GiB virtual, ${((data / SIZE) * 100).toFixed(1)}% data; files in ${dir}`);
}

const out = (n) => join(dir, n);
const vdisk = (...a) => ["node", [VDISK, ...a]];
const qemu = (...a) => ["qemu-img", a];
// Each case: how to run it, what it writes, and which qemu-img case it is compared with.
const cases = [
  { name: "raw→qcow2 (qemu-img)", cmd: qemu("convert", "-f", "raw", "-O", "qcow2", raw, out("q.qcow2")), keep: "q.qcow2" },
  { name: "qcow2→raw (qemu-img)", cmd: qemu("convert", "-f", "qcow2", "-O", "raw", out("q.qcow2"), out("q.raw")), drop: "q.raw" },
  { name: "raw→fvd compact", cmd: vdisk("convert", "-f", "raw", "-O", "fvd", "-o", "compact_image=on", raw, out("v.fvd")), keep: "v.fvd", ref: "raw→qcow2 (qemu-img)" },
  { name: "fvd→raw", cmd: vdisk("convert", "-f", "fvd", "-O", "raw", out("v.fvd"), out("v.raw")), drop: "v.raw", ref: "qcow2→raw (qemu-img)" },
  { name: "raw→gow2", cmd: vdisk("convert", "-f", "raw", "-O", "gow2", raw, out("v.gow")), keep: "v.gow", ref: "raw→qcow2 (qemu-img)" },
  { name: "gow2→raw", cmd: vdisk("convert", "-f", "gow2", "-O", "raw", out("v.gow"), out("g.raw")), drop: "g.raw", ref: "qcow2→raw (qemu-img)" },
];
const times = new Map(cases.map((c) => [c.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const c of cases) {
    if (c.keep) rmSync(out(c.keep), { force: true });
    const t0 = process.hrtime.bigint();
    execFileSync(c.cmd[0], c.cmd[1], { stdio: ["ignore", "ignore", "inherit"] });
    times.get(c.name).push(Number(process.hrtime.bigint() - t0) / 1e9);
    if (c.drop) rmSync(out(c.drop), { force: true });
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("case                    median s   ratio to qemu-img (same direction)");
for (const c of cases) {
  const m = median(times.get(c.name));
  const ratio = c.ref ? (m / median(times.get(c.ref))).toFixed(2) : "—";
  console.log(`${c.name.padEnd(24)}${m.toFixed(2).padStart(8)}   ${ratio}`);
}
rmSync(dir, { recursive: true, force: true });
