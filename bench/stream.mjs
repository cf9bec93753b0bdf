#!/usr/bin/env node
// Streaming benchmark (issue 10): `vdisk convert -O qcow2 SRC - | cat > OUT` (the image through
// a pipe, written front to back), beside `vdisk convert` to a file and `qemu-img convert` to a
// file, on the same input in the same run. Run `npm run build` first.
//
//   node bench/stream.mjs [--size 4G | --quick] [--rounds 3] [--dir /dev/shm] [--vdisk dist/cli/main.js] [--keep]
//
// --quick is --size 512M.
//
// Method: the standard workload (bench/lib/workload.mjs), a sparse raw image of --size bytes,
// about half random data in runs of 1–64 clusters of 64 KiB, half zeros. Each round runs the
// three cases in a rotating order, outputs deleted between runs. The streamed case is timed as
// the whole shell pipeline; its peak RSS is the largest of the pipeline's processes (GNU time
// reports the children's maximum: vdisk's node process). vdisk streams raw→qcow2 in two reads of
// the source (zero scan, then the data, since the qcow2 tables come first and vdisk's raw files
// have no hole map). The first streamed output is checked with qemu-img check and compare.
// Reported: median wall seconds, CPU seconds and peak RSS per case, ratios to qemu-img.
import { rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDir, gib, haveQemuImg, loadLine, median, parseArgs, parseSize, run, timed, writeWorkloadRaw } from "./lib/workload.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = parseArgs();
const size = parseSize(args.get("size", args.has("quick") ? "512M" : "4G"));
const rounds = Number(args.get("rounds", "3"));
const vdisk = args.get("vdisk", join(root, "dist", "cli", "main.js"));

if (!haveQemuImg("bench/stream.mjs")) process.exit(0);

const { path: dir, note } = benchDir({ dir: args.get("dir"), need: Math.ceil(size * 1.3), prefix: "vdisk-stream-bench" });
if (note) console.log(note);
const src = join(dir, "src.raw");
const out = join(dir, "out.qcow2");
console.log(`stream benchmark: ${gib(size)} raw → qcow2, ${rounds} rounds, in ${dir}`);
const w = writeWorkloadRaw(src, size);
console.log(`workload: ${gib(w.dataBytes ?? 0)} of data written in ${(w.secs ?? 0).toFixed(1)} s`);

const sh = (s) => ["bash", ["-o", "pipefail", "-c", s]];
const q = (s) => `'${s.replace(/'/g, "'\\''")}'`;
const cases = [
  { name: "vdisk → pipe", cmd: sh(`${q(process.execPath)} ${q(vdisk)} convert -f raw -O qcow2 ${q(src)} - | cat > ${q(out)}`) },
  { name: "vdisk → file", cmd: [process.execPath, [vdisk, "convert", "-f", "raw", "-O", "qcow2", src, out]] },
  { name: "qemu-img → file", cmd: ["qemu-img", ["convert", "-f", "raw", "-O", "qcow2", src, out]] },
];
const results = new Map(cases.map((c) => [c.name, { secs: [], cpu: [], rss: [], size: 0 }]));

for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < cases.length; k++) {
    const c = cases[(k + round) % cases.length];
    rmSync(out, { force: true });
    const r = await timed(c.cmd[0], c.cmd[1]);
    const res = results.get(c.name);
    res.secs.push(r.secs);
    res.cpu.push(r.cpu);
    res.rss.push(r.peakKiB);
    res.size = statSync(out).size;
    if (round === 0 && c.name === "vdisk → pipe") {
      run("qemu-img", ["check", "-q", out]);
      run("qemu-img", ["compare", "-q", "-f", "raw", "-F", "qcow2", src, out]);
    }
    console.log(
      `  round ${round + 1} ${c.name.padEnd(16)} ${r.secs.toFixed(2).padStart(7)} s  cpu ${r.cpu.toFixed(2).padStart(6)} s  ` +
        `peak RSS ${(r.peakKiB / 1024).toFixed(0).padStart(4)} MiB`,
    );
  }
}
rmSync(out, { force: true });

const qemu = results.get("qemu-img → file");
console.log(`\nmedians over ${rounds} rounds (${loadLine()}):`);
console.log("case               wall s  ratio   cpu s  ratio  peak RSS   output");
for (const [name, r] of results) {
  const s = median(r.secs);
  const c = median(r.cpu);
  const rss = Math.max(...r.rss) / 1024;
  console.log(
    `${name.padEnd(16)} ${s.toFixed(2).padStart(8)} ${(s / median(qemu.secs)).toFixed(2).padStart(5)}x ${c.toFixed(2).padStart(7)} ` +
      `${(c / median(qemu.cpu)).toFixed(2).padStart(5)}x ${rss.toFixed(0).padStart(5)} MiB  ${gib(r.size)}` +
      `${name.startsWith("vdisk") && rss > 300 ? "  (above 300 MiB)" : ""}`,
  );
}
if (!args.has("keep")) rmSync(dir, { recursive: true, force: true });
