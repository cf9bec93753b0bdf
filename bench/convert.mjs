#!/usr/bin/env node
// Convert benchmark: `vdisk convert` (the built bin) against `qemu-img convert` on the same files
// in the same run, qcow2→raw and raw→qcow2. Run `npm run build` first.
//
//   node bench/convert.mjs [--size 4G | --quick] [--rounds 11] [--dir /dev/shm]
//                          [--vdisk dist/cli/main.js] [--baseline OTHER/dist/cli/main.js]
//                          [--prewarm] [--settle SECONDS] [--keep] [--cpu-prof DIR]
//
// --baseline times a second vdisk build (another checkout) in the same rounds, for A/B
// comparisons of a change; it is reported as its own line.
// --prewarm writes and deletes a scratch file as large as the output's data right before each
// timed run (an attempt at keeping free memory at hand on a VM that hands freed memory back to
// its host within seconds; it made every run slower here — see BENCHMARKING.md, "Noise").
// --settle S waits S seconds before each timed run (after the previous output was deleted), so
// that every run starts after the VM has handed the freed memory back: the same state for all.
//
// --quick is --size 512M.
//
// Method (see BENCHMARKING.md, "Convert"): a deterministic image of --size bytes, about half
// random data in runs of 1–64 clusters of 64 KiB and half zeros, written sparsely as raw and
// converted to qcow2 by qemu-img. Each round runs every case with both tools, alternating which
// goes first; outputs are deleted between runs. Reported: median wall time per tool, the ratio
// vdisk/qemu-img, and vdisk's peak RSS (from /usr/bin/time, else polling /proc).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, writeSync, rmSync, statfsSync, readFileSync, ftruncateSync } from "node:fs";
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
const QUICK = argv.includes("--quick");
const SIZE = parseSize(arg("size", QUICK ? "512M" : "4G"));
const ROUNDS = Math.max(1, Number(arg("rounds", "11")));
const VDISK = arg("vdisk", join(root, "dist", "cli", "main.js"));
const BASELINE = arg("baseline", undefined);
const PREWARM = argv.includes("--prewarm");
const SETTLE = Number(arg("settle", "0"));
const KEEP = argv.includes("--keep");
const PROF = arg("cpu-prof", undefined);
const CLUSTER = 65536;

if (spawnSync("qemu-img", ["--version"]).status !== 0) {
  console.error("convert bench: qemu-img not found; install qemu-utils. Skipping.");
  process.exit(0);
}
if (!existsSync(VDISK)) {
  console.error(`convert bench: ${VDISK} not found; run npm run build first.`);
  process.exit(1);
}

// Inputs and outputs on tmpfs when it has room: raw (sparse, ~SIZE/2) + qcow2 (~SIZE/2) + two outputs.
let dir = arg("dir", undefined);
const need = SIZE * 2.2;
const freeOn = (d) => {
  try {
    const s = statfsSync(d);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
};
let note = "";
if (!dir) {
  if (freeOn("/dev/shm") >= need) dir = "/dev/shm";
  else {
    dir = (await import("node:os")).tmpdir();
    note = `note: /dev/shm has less than ${(need / 2 ** 30).toFixed(1)} GiB free; using ${dir} (disk, page cache)`;
  }
}
dir = join(dir, `vdisk-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
if (note) console.log(note);

// xorshift128: deterministic and fast enough to fill gigabytes.
let s0 = 0x9e3779b9, s1 = 0x243f6a88, s2 = 0xb7e15162, s3 = 0x12345678;
function next() {
  const t = s0 ^ (s0 << 11);
  s0 = s1; s1 = s2; s2 = s3;
  s3 = (s3 ^ (s3 >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
  return s3;
}
const runLength = () => 1 + (next() % 64);

const raw = join(dir, "src.raw");
const qcow2 = join(dir, "src.qcow2");
{
  const t0 = performance.now();
  const fd = openSync(raw, "w");
  ftruncateSync(fd, SIZE);
  const clusters = Math.ceil(SIZE / CLUSTER);
  const buf = new Uint8Array(64 * CLUSTER);
  const words = new Uint32Array(buf.buffer);
  let c = 0;
  let dataBytes = 0;
  while (c < clusters) {
    const n = Math.min(runLength(), clusters - c);
    const len = Math.min(n * CLUSTER, SIZE - c * CLUSTER);
    for (let i = 0; i < len >>> 2; i++) words[i] = next();
    writeSync(fd, buf, 0, len, c * CLUSTER);
    dataBytes += len;
    c += n + runLength(); // then a zero run
  }
  closeSync(fd);
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  console.log(
    `image: ${(SIZE / 2 ** 30).toFixed(2)} GiB virtual, ${(dataBytes / 2 ** 30).toFixed(2)} GiB data ` +
      `(${((dataBytes / SIZE) * 100).toFixed(1)}%), made in ${((performance.now() - t0) / 1000).toFixed(1)} s; files in ${dir}`,
  );
}

const hasTime = existsSync("/usr/bin/time");

/** Writes and deletes `bytes` of scratch data in `dir`, so that free memory is at hand. */
function prewarm(bytes) {
  const path = join(dir, "prewarm.tmp");
  const chunk = new Uint8Array(16 << 20).fill(1);
  const fd = openSync(path, "w");
  for (let at = 0; at < bytes; at += chunk.length) writeSync(fd, chunk, 0, chunk.length, at);
  closeSync(fd);
  rmSync(path);
}

/** Runs a command, returns wall seconds, CPU seconds (user+sys, with /usr/bin/time) and peak RSS in KiB. */
function timed(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const full = hasTime ? ["/usr/bin/time", ["-f", "%M %U %S", cmd, ...args]] : [cmd, args];
    const t0 = process.hrtime.bigint();
    const child = spawn(full[0], full[1], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    let err = "";
    let peak = 0;
    let cpu = NaN;
    const poll = hasTime ? undefined : setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (m) peak = Math.max(peak, Number(m[1]));
      } catch { /* exited */ }
    }, 20);
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (poll) clearInterval(poll);
      const lines = err.trim().split("\n");
      if (hasTime) {
        const [m, u, s] = lines.pop().split(" ").map(Number);
        peak = m;
        cpu = u + s;
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} failed (${code}): ${lines.join("\n")}`));
      else resolve({ secs, cpu, peakKiB: peak });
    });
  });
}

const cases = [
  { name: "qcow2→raw", src: qcow2, fmt: "qcow2", out: "raw" },
  { name: "raw→qcow2", src: raw, fmt: "raw", out: "qcow2" },
];
const results = new Map(cases.map((c) => [c.name, { qemu: [], vdisk: [], base: [], qemuCpu: [], vdiskCpu: [], baseCpu: [], rss: [] }]));
const tools = BASELINE ? ["qemu", "vdisk", "base"] : ["qemu", "vdisk"];
const dst = join(dir, "dst.img");
const nodeArgs = PROF ? ["--cpu-prof", "--cpu-prof-dir", PROF] : [];

for (let round = 0; round < ROUNDS; round++) {
  for (const c of cases) {
    // Rotate which tool goes first (with two tools: alternate).
    const order = tools.map((_, i) => tools[(i + round) % tools.length]);
    for (const tool of order) {
      rmSync(dst, { force: true });
      if (PREWARM) prewarm(SIZE / 2);
      if (SETTLE > 0) await new Promise((r) => setTimeout(r, SETTLE * 1000));
      const r = tool === "qemu"
        ? await timed("qemu-img", ["convert", "-f", c.fmt, "-O", c.out, c.src, dst])
        : await timed(process.execPath, [...nodeArgs, tool === "base" ? BASELINE : VDISK, "convert", "-f", c.fmt, "-O", c.out, c.src, dst]);
      const res = results.get(c.name);
      res[tool].push(r.secs);
      res[`${tool}Cpu`].push(r.cpu);
      if (tool === "vdisk") res.rss.push(r.peakKiB);
      if (tool !== "qemu") {
        if (round === 0) {
          const cmp = spawnSync("qemu-img", ["compare", "-f", c.fmt, "-F", c.out, c.src, dst], { encoding: "utf8" });
          if (cmp.status !== 0) {
            console.error(`convert bench: ${c.name} output differs from the source: ${cmp.stdout}${cmp.stderr}`);
            process.exitCode = 1;
          }
        }
      }
      console.log(`  round ${round + 1} ${c.name.padEnd(10)} ${tool.padEnd(5)} ${r.secs.toFixed(3)} s (cpu ${r.cpu.toFixed(3)} s)${tool === "vdisk" ? `  peak RSS ${(r.peakKiB / 1024).toFixed(0)} MiB` : ""}`);
    }
  }
}
rmSync(dst, { force: true });

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const load = (await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ");
console.log(`\nconvert, ${(SIZE / 2 ** 30).toFixed(2)} GiB, ${ROUNDS} rounds${PREWARM ? ", prewarmed" : ""}${SETTLE > 0 ? `, ${SETTLE} s settle` : ""}, medians (load average ${load} on ${(await import("node:os")).cpus().length} CPUs):`);
console.log("case        qemu-img     vdisk   ratio   cpu: qemu-img    vdisk  ratio   vdisk peak RSS");
for (const c of cases) {
  const r = results.get(c.name);
  const q = median(r.qemu);
  const v = median(r.vdisk);
  const qc = median(r.qemuCpu);
  const vc = median(r.vdiskCpu);
  const rss = Math.max(...r.rss) / 1024;
  console.log(
    `${c.name.padEnd(10)} ${q.toFixed(3).padStart(8)} s ${v.toFixed(3).padStart(7)} s ${(v / q).toFixed(2).padStart(6)}x ` +
      `${qc.toFixed(3).padStart(10)} s ${vc.toFixed(3).padStart(7)} s ${(vc / qc).toFixed(2).padStart(5)}x  ${rss.toFixed(0).padStart(6)} MiB` +
      `${v / q > 1.25 ? "  (above the 1.25x target)" : ""}${rss > 300 ? "  (above 300 MiB)" : ""}`,
  );
  if (BASELINE) {
    const b = median(r.base);
    const bc = median(r.baseCpu);
    console.log(`  baseline ${" ".repeat(10)} ${b.toFixed(3).padStart(7)} s ${(b / q).toFixed(2).padStart(6)}x ${" ".repeat(12)} ${bc.toFixed(3).padStart(7)} s ${(bc / qc).toFixed(2).padStart(5)}x   (vdisk/baseline ${(v / b).toFixed(2)}x)`);
  }
}
if (!KEEP) rmSync(dir, { recursive: true, force: true });
else console.log(`kept ${dir}`);
