#!/usr/bin/env node
// Format conversion benchmark (issues 3–5): `vdisk convert` from and to vhdx, qed, fvd, gow2, vmdk,
// vpc and vdi against `qemu-img convert` on the same input in the same run. Run `npm run build` first.
//
//   node bench/formats.mjs [--size 4G | --quick] [--rounds 3] [--warmup 1] [--cases a,b] [--dir D]
//                          [--vdisk dist/cli/main.js] [--keep] [--cpu-prof DIR] [--list]
//
// --quick is --size 512M. --cases picks cases whose id contains one of the words (ids: --list),
// e.g. `--cases vpc,qed-raw`; `issue3`, `issue4`, `issue5` pick an issue's cases.
//
// Method (BENCHMARKING.md, "Formats"): the standard workload (bench/lib/workload.mjs) — a sparse
// raw image of --size bytes, about half random data in runs of 1–64 clusters of 64 KiB, half
// zeros — and from it, once, the input of each case: qemu-img makes vhdx, qed, qcow2, vmdk, vpc
// and vdi; vdisk makes fvd (compact) and gow2, which qemu-img cannot. Where qemu-img has no
// driver (fvd, gow2) it does the nearest job on the same data: raw→qcow2 for conversions to
// fvd/gow2, qcow2→raw for conversions from them.
// Each case runs --warmup untimed rounds, then --rounds timed rounds of one vdisk and one
// qemu-img conversion, qemu-img first in even rounds, outputs deleted between runs.
// Cases run one after another, each with all its rounds, and an input is deleted after its
// last case, so tmpfs holds the raw image, at most two inputs and one output at a time.
// The first (warm-up) vdisk output of each case is checked against the raw image: by `qemu-img
// compare` when qemu reads the format, else converted back to raw by vdisk and compared.
// Reported per case: median wall seconds per tool and their ratio (vdisk/qemu-img), the best
// run of each and their ratio, median CPU seconds (user + system), vdisk's peak RSS.
// On a VM that hands freed memory back to the host (virtio-balloon free page reporting, ~2 s
// after a free), a run that writes while that report runs pays a host fault per page: the
// same conversion then takes 2–3× longer, often every other run. Compare the best runs there.
import { rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  benchDir,
  gib,
  haveQemuImg,
  loadLine,
  median,
  parseArgs,
  parseSize,
  run,
  timed,
  writeWorkloadRaw,
} from "./lib/workload.mjs";

const LABEL = "formats bench";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = parseArgs();
const SIZE = parseSize(args.get("size", args.has("quick") ? "512M" : "4G"));
const ROUNDS = Math.max(1, Number(args.get("rounds", "3")) || 1);
const WARMUP = Math.max(0, Number(args.get("warmup", "1")) || 0);
const VDISK = args.get("vdisk", join(root, "dist", "cli", "main.js"));
const KEEP = args.has("keep");
const PROF = args.get("cpu-prof", undefined);

/**
 * Inputs, made once from the raw workload. `by` says which tool writes them; `o` are create
 * options. qemu-img's defaults apart from `o`: qcow2 64 KiB clusters, vmdk monolithicSparse,
 * vdi dynamic, vhdx dynamic with 32 MiB blocks (qemu picks by size), qed 64 KiB clusters.
 */
const INPUTS = {
  raw: { fmt: "raw" },
  vhdx: { fmt: "vhdx", by: "qemu" },
  qed: { fmt: "qed", by: "qemu" },
  qcow2: { fmt: "qcow2", by: "qemu" },
  vmdk: { fmt: "vmdk", by: "qemu" },
  vpc: { fmt: "vpc", by: "qemu", o: "subformat=dynamic" },
  vdi: { fmt: "vdi", by: "qemu" },
  fvd: { fmt: "fvd", by: "vdisk", o: "compact_image=on" },
  gow2: { fmt: "gow2", by: "vdisk" },
};

/**
 * One conversion: vdisk converts input `src` to format `out` (create options `o`); qemu-img does
 * the same unless `ref` gives the conversion it does instead. `goal` is the issue's target ratio.
 */
const CASES = [
  { id: "vhdx-qcow2", issue: 3, src: "vhdx", out: "qcow2", goal: "< 1.0" },
  { id: "qed-raw", issue: 3, src: "qed", out: "raw", goal: "≤ 1.0" },
  { id: "raw-fvd", issue: 4, src: "raw", out: "fvd", o: "compact_image=on", ref: { src: "raw", out: "qcow2" } },
  { id: "fvd-raw", issue: 4, src: "fvd", out: "raw", ref: { src: "qcow2", out: "raw" } },
  { id: "raw-gow2", issue: 4, src: "raw", out: "gow2", ref: { src: "raw", out: "qcow2" } },
  { id: "gow2-raw", issue: 4, src: "gow2", out: "raw", ref: { src: "qcow2", out: "raw" } },
  { id: "raw-vmdk", issue: 5, src: "raw", out: "vmdk", goal: "≤ 1.0" },
  { id: "vmdk-raw", issue: 5, src: "vmdk", out: "raw", goal: "≤ 1.0" },
  { id: "raw-vpc", issue: 5, src: "raw", out: "vpc", o: "subformat=dynamic", goal: "≤ 1.0" },
  { id: "vpc-raw", issue: 5, src: "vpc", out: "raw", goal: "≤ 1.0" },
  { id: "raw-vdi", issue: 5, src: "raw", out: "vdi", goal: "≤ 1.0" },
  { id: "vdi-raw", issue: 5, src: "vdi", out: "raw", goal: "≤ 1.0" },
];
for (const c of CASES) {
  c.name = `${INPUTS[c.src].fmt}→${c.out}${c.o ? ` (${c.o})` : ""}`;
  c.qemu = c.ref ?? { src: c.src, out: c.out, o: c.o };
  c.qemuName = `${INPUTS[c.qemu.src].fmt}→${c.qemu.out}`;
}
/** Formats qemu-img 7.2 reads, so it can check vdisk's output itself. */
const QEMU_READS = new Set(["raw", "qcow2", "qed", "vhdx", "vmdk", "vpc", "vdi"]);

if (args.has("list")) {
  for (const c of CASES) console.log(`${c.id.padEnd(11)} issue ${c.issue}  vdisk ${c.name}, qemu-img ${c.qemuName}`);
  process.exit(0);
}
const words = args.get("cases", "").split(",").map((w) => w.trim()).filter(Boolean);
const cases = words.length ? CASES.filter((c) => words.some((w) => c.id.includes(w) || w === `issue${c.issue}`)) : CASES;
if (!cases.length) {
  console.error(`${LABEL}: no case matches --cases ${words.join(",")} (see --list)`);
  process.exit(1);
}
if (!haveQemuImg(LABEL)) process.exit(0);
try {
  statSync(VDISK);
} catch {
  console.error(`${LABEL}: ${VDISK} not found; run npm run build first.`);
  process.exit(1);
}

// Live at once: the raw image (~SIZE/2 of data), two inputs and one output (each ~SIZE/2 plus
// metadata), or a converted-back raw file while checking.
const { path: dir, note } = benchDir({ dir: args.get("dir", undefined), need: SIZE * 2.2, prefix: "vdisk-formats-bench" });
if (note) console.log(note);
const file = (name) => join(dir, name);
const nodeFlags = PROF ? ["--cpu-prof", "--cpu-prof-dir", PROF] : [];
const vdiskArgs = (...a) => [...nodeFlags, VDISK, ...a];
const convertArgs = (srcFmt, srcPath, out, o, dst) => ["convert", "-f", srcFmt, "-O", out, ...(o ? ["-o", o] : []), srcPath, dst];
const allocated = (p) => statSync(p).blocks * 512;

console.log(`${LABEL}: ${gib(SIZE)} virtual, ${WARMUP} warm-up + ${ROUNDS} rounds, cases ${cases.map((c) => c.id).join(" ")}; files in ${dir}; ${loadLine()}`);
if (PROF) console.log(`note: vdisk runs write CPU profiles to ${PROF}; their times include the profiler`);

// The raw workload, then each input just before its first case; deleted after its last.
const made = new Map();
const lastUse = new Map();
cases.forEach((c, i) => {
  lastUse.set(c.src, i);
  lastUse.set(c.qemu.src, i);
});
{
  const { dataBytes, secs } = writeWorkloadRaw(file("src.raw"), SIZE);
  made.set("raw", file("src.raw"));
  console.log(`raw: ${gib(dataBytes)} of data (${((dataBytes / SIZE) * 100).toFixed(1)}%), written in ${secs.toFixed(1)} s`);
}
function input(key) {
  if (made.has(key)) return made.get(key);
  const inp = INPUTS[key];
  const path = file(`src.${inp.fmt}`);
  const t0 = performance.now();
  const a = convertArgs("raw", made.get("raw"), inp.fmt, inp.o, path);
  if (inp.by === "qemu") run("qemu-img", a);
  else run(process.execPath, [VDISK, ...a]);
  console.log(`${inp.fmt}: made by ${inp.by === "qemu" ? "qemu-img" : "vdisk"}${inp.o ? ` -o ${inp.o}` : ""} in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${gib(allocated(path))} allocated`);
  made.set(key, path);
  return path;
}

/** Checks vdisk's output of case `c` against the raw image; returns an error text or "". */
function verify(c, out) {
  const raw = made.get("raw");
  try {
    if (QEMU_READS.has(c.out)) {
      run("qemu-img", ["compare", "-f", "raw", "-F", c.out, raw, out]);
    } else {
      const back = file("check.raw");
      rmSync(back, { force: true });
      try {
        run(process.execPath, [VDISK, ...convertArgs(c.out, out, "raw", undefined, back)]);
        run("qemu-img", ["compare", "-f", "raw", "-F", "raw", raw, back]);
      } finally {
        rmSync(back, { force: true });
      }
    }
    return "";
  } catch (e) {
    return e.message.split("\n").slice(0, 3).join(" ");
  }
}

const results = [];
let failures = 0;
for (const [i, c] of cases.entries()) {
  const r = { c, vdisk: [], qemu: [], vdiskCpu: [], qemuCpu: [], rss: [], error: "", wrong: "" };
  results.push(r);
  try {
    const vSrc = input(c.src);
    const qSrc = input(c.qemu.src);
    for (let round = -WARMUP; round < ROUNDS; round++) {
      const warm = round < 0;
      for (const tool of round % 2 === 0 ? ["qemu", "vdisk"] : ["vdisk", "qemu"]) {
        // A name per run, so a slow unlink of one run's output can never overlap the next run.
        const dst = file(`out-${round + WARMUP}-${tool}.${tool === "vdisk" ? c.out : c.qemu.out}`);
        rmSync(dst, { force: true });
        const t =
          tool === "vdisk"
            ? await timed(process.execPath, vdiskArgs(...convertArgs(INPUTS[c.src].fmt, vSrc, c.out, c.o, dst)))
            : await timed("qemu-img", convertArgs(INPUTS[c.qemu.src].fmt, qSrc, c.qemu.out, c.qemu.o, dst));
        if (!warm) {
          r[tool].push(t.secs);
          r[`${tool}Cpu`].push(t.cpu);
          if (tool === "vdisk") r.rss.push(t.peakKiB);
        }
        if (tool === "vdisk") {
          if (round === -WARMUP) {
            r.wrong = verify(c, dst);
            if (r.wrong) console.error(`${LABEL}: ${c.id}: vdisk's output differs from the raw image: ${r.wrong}`);
          }
        }
        rmSync(dst, { force: true });
        console.log(
          `  ${c.id.padEnd(11)} ${warm ? "warm-up" : `round ${round + 1}`} ${(tool === "qemu" ? "qemu-img" : "vdisk").padEnd(8)} ${t.secs.toFixed(3)} s` +
            ` (cpu ${t.cpu.toFixed(3)} s)${tool === "vdisk" ? `  peak RSS ${(t.peakKiB / 1024).toFixed(0)} MiB` : ""}`,
        );
      }
    }
  } catch (e) {
    r.error = e.message.split("\n")[0];
    console.error(`${LABEL}: ${c.id} failed: ${e.message}`);
  }
  if (r.error || r.wrong) failures++;
  // Inputs no later case needs go, so tmpfs never holds all of them.
  for (const [key, path] of made) {
    if (key !== "raw" && !KEEP && lastUse.get(key) <= i) {
      rmSync(path, { force: true });
      made.delete(key);
    }
  }
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const med = (xs) => (xs.length ? median(xs) : NaN);
const best = (xs) => (xs.length ? Math.min(...xs) : NaN);
console.log(`\n${LABEL}: ${gib(SIZE)} virtual (half data), ${ROUNDS} rounds after ${WARMUP} warm-up; ${loadLine()}`);
console.log("| issue | vdisk | qemu-img | median s: vdisk | qemu-img | ratio | best s: vdisk | qemu-img | ratio | CPU s: vdisk | qemu-img | vdisk peak RSS | goal |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const { c } = r;
  const bad = r.error ? "failed" : r.wrong ? "WRONG OUTPUT" : "";
  const ratio = (v, q) => bad || `${fmt(v / q)}×`;
  const rss = r.rss.length ? `${(Math.max(...r.rss) / 1024).toFixed(0)} MiB` : "—";
  const cells = [c.issue, c.name, c.qemuName];
  cells.push(fmt(med(r.vdisk)), fmt(med(r.qemu)), ratio(med(r.vdisk), med(r.qemu)));
  cells.push(fmt(best(r.vdisk)), fmt(best(r.qemu)), ratio(best(r.vdisk), best(r.qemu)));
  cells.push(fmt(med(r.vdiskCpu)), fmt(med(r.qemuCpu)), rss, c.goal ?? "report");
  console.log(`| ${cells.join(" | ")} |`);
}
if (!KEEP) rmSync(dir, { recursive: true, force: true });
else console.log(`kept ${dir}`);
process.exitCode = failures ? 1 : 0;
