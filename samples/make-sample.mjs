#!/usr/bin/env node
// Makes samples/vdisk-sample.qcow2, the image `npm start` shows: 64 MiB virtual, a few hundred
// KiB on disk. Viewed as a grid of 64 x 16 clusters of 64 KiB, its data clusters spell "VDISK"
// (each holds a readable text pattern naming the cluster, stored compressed), a row of zero
// clusters underlines the word, and the rest is unallocated. Needs qemu-img and qemu-io.
//
//   node samples/make-sample.mjs
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "vdisk-sample.qcow2");
const COLS = 64;
const CLUSTER = 65536;
const SIZE = 64 << 20;

// 5 glyphs, 7 columns x 9 rows, '#' = data cluster.
const FONT = {
  V: ["#.....#", "#.....#", "#.....#", ".#...#.", ".#...#.", ".#...#.", "..#.#..", "..#.#..", "...#..."],
  D: ["#####..", "#....#.", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", "#....#.", "#####.."],
  I: ["#######", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...", "...#...", "#######"],
  S: [".#####.", "#.....#", "#......", ".#.....", "..###..", ".....#.", "......#", "#.....#", ".#####."],
  K: ["#....#.", "#...#..", "#..#...", "#.#....", "##.....", "#.#....", "#..#...", "#...#..", "#....#."],
};
const TOP = 3;
const LEFT = 4;
const data = [];
"VDISK".split("").forEach((ch, g) => {
  FONT[ch].forEach((row, r) => {
    for (let c = 0; c < row.length; c++) if (row[c] === "#") data.push((TOP + r) * COLS + LEFT + g * 12 + c);
  });
});
const underline = [];
for (let c = LEFT; c < LEFT + 5 * 12 - 5; c++) underline.push((TOP + 11) * COLS + c);

const work = mkdtempSync(join(tmpdir(), "vdisk-sample-"));
try {
  const raw = new Uint8Array(SIZE);
  const enc = new TextEncoder();
  for (const cl of data) {
    const line = enc.encode(`vdisk sample: cluster ${cl} (row ${Math.floor(cl / COLS)}, column ${cl % COLS})\n`);
    for (let p = 0; p < CLUSTER; p += line.length) raw.set(line.subarray(0, Math.min(line.length, CLUSTER - p)), cl * CLUSTER + p);
  }
  writeFileSync(join(work, "sample.raw"), raw);
  rmSync(out, { force: true });
  execFileSync("qemu-img", ["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", join(work, "sample.raw"), out]);
  const cmds = underline.flatMap((cl) => ["-c", `write -z ${cl * CLUSTER} ${CLUSTER}`]);
  execFileSync("qemu-io", ["-f", "qcow2", ...cmds, out], { stdio: "ignore" });
  execFileSync("qemu-img", ["check", "-q", out]);
  console.log(`${out}: ${data.length} data clusters, ${underline.length} zero clusters, ${statSync(out).size} bytes on disk`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
