#!/usr/bin/env node
// `npm start`: a tour of vdisk on the sample image in samples/ — what it is (info), where its
// data lives (an allocation map drawn from its extents), a conversion to another format in a
// temporary directory, and a check and compare of the result. Uses the built package (dist/).
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tty = process.stdout.isTTY;
const paint = (code, s) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s) => paint("1", s);
const say = (s = "") => process.stdout.write(`${s}\n`);
const step = (n, s) => say(`\n${bold(`${n}. ${s}`)}`);

let vdisk, cli;
try {
  if (!existsSync(join(root, "dist", "node.js"))) throw new Error("dist/ is missing");
  vdisk = await import(join(root, "dist", "node.js"));
  cli = await import(join(root, "dist", "cli", "main.js"));
} catch (e) {
  console.error(`vdisk demo: the package is not built (${e.message}). Run 'npm run build' first.`);
  process.exit(1);
}

/** Runs a `vdisk` command in-process, printing its output indented. */
async function run(args, { quiet = false } = {}) {
  let out = "";
  let err = "";
  const code = await cli.runCli(args, { stdout: { write: (t) => (out += t) }, stderr: { write: (t) => (err += t) }, isTTY: false });
  if (!quiet) {
    say(paint("2", `$ vdisk ${args.map((a) => (a.includes(" ") ? `'${a}'` : a)).join(" ")}`));
    const text = (out + err).trimEnd();
    if (text) for (const l of text.split("\n")) say(`  ${l}`);
  }
  return { code, out, err };
}

const samplePath = join(root, "samples", "vdisk-sample.qcow2");
const sample = relative(process.cwd(), samplePath) || samplePath;
const work = mkdtempSync(join(tmpdir(), "vdisk-demo-"));
const done = [];
try {
  say(bold("vdisk — virtual disk images for JavaScript"));
  say(`The sample image ${sample} is a 64 MiB virtual disk stored in a few hundred KiB.`);

  let source = sample;
  let sourceFormat = "qcow2";
  if (!vdisk.findDriver("qcow2")) {
    // Degrade: build the same picture as a raw image with the library itself.
    say(paint("33", "\nThe qcow2 driver is not available in this build, so the sample cannot be opened."));
    say("Continuing with a raw copy of the picture made on the spot (raw has no zero clusters or holes to show).");
    source = join(work, "sample.raw");
    sourceFormat = "raw";
    const img = await vdisk.createImage(source, { format: "raw", size: 64 << 20 });
    const text = new TextEncoder().encode("vdisk sample\n".repeat(5042));
    for (const cl of [196, 197, 260, 262, 324, 326]) await img.write(cl * 65536, text.subarray(0, 65536));
    await img.close();
  }

  step(1, "What is it? (vdisk info — same text and JSON as qemu-img info)");
  await run(["info", source]);
  done.push("described the image");

  step(2, "Where does its data live? (the extents of vdisk map, drawn as a grid)");
  const img = await vdisk.openImage(source, { format: sourceFormat, readOnly: true });
  const COLS = 64;
  const ROWS = 16;
  const cell = Math.ceil(img.size / (COLS * ROWS));
  const kinds = new Array(COLS * ROWS).fill(0); // 0 unallocated, 1 zero, 2 data
  let dataBytes = 0;
  let zeroBytes = 0;
  for await (const e of img.extents()) {
    const kind = e.data ? 2 : e.present ? 1 : 0;
    if (kind === 2) dataBytes += e.length;
    if (kind === 1) zeroBytes += e.length;
    if (kind === 0) continue;
    for (let c = Math.floor(e.offset / cell); c * cell < e.offset + e.length && c < kinds.length; c++) kinds[c] = Math.max(kinds[c], kind);
  }
  await img.close();
  const glyph = [paint("2", "·"), paint("36", "░"), paint("32", "█")];
  say(`  one character = ${cell / 1024} KiB of the virtual disk, ${COLS} per row`);
  for (let r = 0; r < ROWS; r++) say(`  ${kinds.slice(r * COLS, (r + 1) * COLS).map((k) => glyph[k]).join("")}`);
  say(`  ${glyph[2]} data (${dataBytes / 1024} KiB)   ${glyph[1]} zeros stored as such (${zeroBytes / 1024} KiB)   ${glyph[0]} unallocated, reads as zeros`);
  done.push("mapped its allocation");

  step(3, "Convert it to another format (vdisk convert)");
  const targets = ["vhdx", "vpc", "vdi", "qcow2", "raw"].filter((f) => f !== sourceFormat && vdisk.findDriver(f)?.create);
  const target = targets[0] ?? "raw";
  const out = join(work, `sample.${target === "vpc" ? "vhd" : target}`);
  const t0 = performance.now();
  const conv = await run(["convert", "-f", sourceFormat, "-O", target, source, out]);
  const ms = performance.now() - t0;
  if (conv.code !== 0) throw new Error(`convert to ${target} failed`);
  say(`  ${target} image written in ${ms.toFixed(0)} ms: ${statSync(out).blocks * 512} bytes on disk for a ${64} MiB disk (zero ranges were not written)`);
  done.push(`converted it to ${target}`);

  step(4, "Is the result sound and the same? (vdisk check, vdisk compare)");
  const chk = await run(["check", out]);
  if (chk.code === 63) say(`  (the ${target} format has no consistency check)`);
  else done.push(chk.code === 0 ? `checked the ${target} image (no errors)` : `checked the ${target} image (exit ${chk.code})`);
  const cmp = await run(["compare", source, out]);
  done.push(cmp.code === 0 ? "compared it with the original: identical" : "compared it with the original: DIFFERENT");

  say(`\n${bold("Done.")} vdisk ${done.join(", ")}.`);
  say("Try it yourself: npx vdisk info|map|convert|check|compare|create|io --help");
} catch (e) {
  console.error(`vdisk demo: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
