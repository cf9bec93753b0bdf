#!/usr/bin/env node
// Kernel benchmark: throughput of each Wasm kernel against its TS twin on the same buffers,
// which live in Wasm memory (allocated with allocBuffer), as the engine arranges in real use.
// Also measures the cost of copying plain data into Wasm memory, to show why buffers are read
// straight into Wasm memory rather than copied there. Run `npm run build` first.
//
//   node bench/kernel.mjs [--runs N] [--quick] [--case <kernel name part> | copy | load] [--markdown]
//
// Method: after a warm-up, each case is timed in R runs (default 15) per kernel, alternating Wasm
// and TS runs so both see the same machine load; a run repeats the operation for about 25 ms.
// The table shows median GB/s of each kernel, the median of the per-run-pair ratios, and the
// best run of each (the least disturbed by other processes).
import { instantiateWasmKernel, kernelWasmBytes, tsKernel } from "../dist/kernel/index.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const runsArg = args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : quick ? 5 : 15;
const RUN_MS = quick ? 10 : 25;
const markdown = args.includes("--markdown");
const onlyArg = args.indexOf("--case");
const only = onlyArg >= 0 ? args[onlyArg + 1] : undefined;

const wasm = await instantiateWasmKernel();
let sink = 0;

/** Repetitions of `fn` that take about RUN_MS, after letting the JIT tier up. */
function calibrate(fn) {
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) sink += fn();
    const dt = performance.now() - t0;
    if (dt >= RUN_MS) return reps;
    reps = Math.ceil(reps * Math.min(16, Math.max(2, (RUN_MS * 1.2) / Math.max(dt, 0.01))));
  }
}

function timeRun(fn, reps, bytes) {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) sink += fn();
  return (bytes * reps) / ((performance.now() - t0) / 1000) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const stats = (rates) => ({ median: median(rates), min: Math.min(...rates), max: Math.max(...rates) });

/** GB/s of one function: RUNS runs of about RUN_MS each. */
function measure(fn, bytes) {
  const reps = calibrate(fn);
  const rates = [];
  for (let r = 0; r < RUNS; r++) rates.push(timeRun(fn, reps, bytes));
  return stats(rates);
}

/**
 * GB/s of two functions measured in alternating runs, so that both see the same machine load;
 * the ratio is the median of the per-pair ratios.
 */
function measurePair(a, b, bytes) {
  const ra = calibrate(a);
  const rb = calibrate(b);
  const as = [];
  const bs = [];
  const ratios = [];
  for (let r = 0; r < RUNS; r++) {
    as.push(timeRun(a, ra, bytes));
    bs.push(timeRun(b, rb, bytes));
    ratios.push(as[r] / bs[r]);
  }
  return { a: stats(as), b: stats(bs), ratio: median(ratios) };
}

const rows = [];
function row(kernel, kase, size, wasmFn, tsFn, bytes = size) {
  if (only && !kernel.includes(only)) return;
  const m = measurePair(wasmFn, tsFn, bytes);
  rows.push({ kernel, kase, size, w: m.a, t: m.b, ratio: m.ratio });
  print(rows[rows.length - 1]);
}

const fmtSize = (n) => (n >= 2 ** 20 ? `${n / 2 ** 20} MiB` : `${n / 1024} KiB`);
const fmt = (r) => r.median.toFixed(2).padStart(7);
function print({ kernel, kase, size, w, t, ratio }) {
  console.log(
    `${kernel.padEnd(15)} ${kase.padEnd(30)} ${fmtSize(size).padStart(8)}  ${fmt(w)} GB/s  ${fmt(t)} GB/s  ${ratio.toFixed(1).padStart(6)}x` +
      `   (best: wasm ${w.max.toFixed(1)}, ts ${t.max.toFixed(1)})`,
  );
}

function wasmBuf(size) {
  const b = wasm.allocBuffer(size);
  if (!wasm.ownsBuffer(b)) throw new Error("arena exhausted");
  b.fill(0);
  return b;
}

const { loadavg } = await import("node:os");
console.log(`node ${process.version}, ${RUNS} runs per case, medians; both kernels scan the same buffers in Wasm memory; load average ${loadavg()[0].toFixed(1)}`);
console.log(`${"kernel".padEnd(15)} ${"case".padEnd(30)} ${"size".padStart(8)}  ${"wasm".padStart(12)}  ${"ts twin".padStart(12)}  ${"ratio".padStart(7)}`);

// ---- zero detection -------------------------------------------------------------------------
for (const size of [64 * 1024, 1 << 20, 16 << 20]) {
  const b = wasmBuf(size);
  row("findNonZero", "all zero", size, () => wasm.findNonZero(b, 0, size), () => tsKernel.findNonZero(b, 0, size));
  wasm.freeBuffer(b);
}
{
  const size = 1 << 20;
  const b = wasmBuf(size);
  row("granuleRunEnd", "zero run, 4 KiB granules", size, () => wasm.granuleRunEnd(b, 0, size, 4096), () => tsKernel.granuleRunEnd(b, 0, size, 4096));
  // Worst case for a data run: each granule's only non-zero byte is its last.
  for (let i = 4095; i < size; i += 4096) b[i] = 1;
  row("granuleRunEnd", "data run, byte at granule end", size, () => wasm.granuleRunEnd(b, 0, size, 4096), () => tsKernel.granuleRunEnd(b, 0, size, 4096));
  b.fill(0);
  for (let i = 0; i < size; i += 512) b[i] = 1;
  row("granuleRunEnd", "data run, 512 B granules", size, () => wasm.granuleRunEnd(b, 0, size, 512), () => tsKernel.granuleRunEnd(b, 0, size, 512));
  wasm.freeBuffer(b);
}

// ---- bitmaps --------------------------------------------------------------------------------
{
  const size = 1 << 20;
  const bits = size * 8;
  const b = wasmBuf(size);
  for (const msb of [false, true]) {
    const order = msb ? "MSB" : "LSB";
    b.fill(0);
    row("nextSetBit", `no set bit, ${order}-first`, size, () => wasm.nextSetBit(b, 0, bits, msb), () => tsKernel.nextSetBit(b, 0, bits, msb));
    b.fill(0xff);
    row("nextClearBit", `no clear bit, ${order}-first`, size, () => wasm.nextClearBit(b, 0, bits, msb), () => tsKernel.nextClearBit(b, 0, bits, msb));
  }
  wasm.freeBuffer(b);
  // Walking every run of a bitmap with short runs (1–128 bits): per-call cost dominates.
  const small = 64 * 1024;
  const c = wasmBuf(small);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0, v = 0; i < small * 8; v ^= 1) {
    const run = 1 + Math.floor(rnd() * 128);
    if (v) for (let j = i; j < Math.min(small * 8, i + run); j++) c[j >> 3] |= 1 << (j & 7);
    i += run;
  }
  // One function per kernel (not one closure factory), so each call site sees one kernel.
  const walkWasm = () => {
    let i = 0, n = 0;
    while (i < small * 8) { i = wasm.nextSetBit(c, i, small * 8, false); i = wasm.nextClearBit(c, i, small * 8, false); n++; }
    return n;
  };
  const walkTs = () => {
    let i = 0, n = 0;
    while (i < small * 8) { i = tsKernel.nextSetBit(c, i, small * 8, false); i = tsKernel.nextClearBit(c, i, small * 8, false); n++; }
    return n;
  };
  row("next*Bit", "walk runs of 1–128 bits", small, walkWasm, walkTs);
  wasm.freeBuffer(c);
}

// ---- tables ---------------------------------------------------------------------------------
for (const stride of [8, 16]) {
  const entries = 65536;
  const size = entries * stride;
  const t = wasmBuf(size);
  const view = new DataView(t.buffer, t.byteOffset, size);
  // qcow2 L2-like: COPIED flag + contiguous 64 KiB clusters.
  for (let i = 0; i < entries; i++) view.setBigUint64(i * stride, (1n << 63n) | (0x10_0000n + BigInt(i) * 65536n));
  const args = [8 === stride ? 8 : 16, 0xc0000000, 0x00000001, 0x00ffffff, 0xfffffe00, 65536];
  row("tableRunLength", `one run, stride ${stride}`, size,
    () => wasm.tableRunLength(t, 0, entries, ...args), () => tsKernel.tableRunLength(t, 0, entries, ...args));
  wasm.freeBuffer(t);
}
{
  // Short runs (1–16 entries): walking the whole table run by run.
  const entries = 8192;
  const t = wasmBuf(entries * 8);
  const view = new DataView(t.buffer, t.byteOffset, entries * 8);
  let host = 0x100000n;
  for (let i = 0; i < entries;) {
    const run = 1 + ((i * 7) % 16);
    for (let j = 0; j < run && i < entries; j++, i++) view.setBigUint64(i * 8, (1n << 63n) | (host += 65536n));
    host += 65536n * 3n;
  }
  const walkWasm = () => {
    let i = 0, n = 0;
    while (i < entries) { i += wasm.tableRunLength(t, i, entries, 8, 0xc0000000, 1, 0x00ffffff, 0xfffffe00, 65536); n++; }
    return n;
  };
  const walkTs = () => {
    let i = 0, n = 0;
    while (i < entries) { i += tsKernel.tableRunLength(t, i, entries, 8, 0xc0000000, 1, 0x00ffffff, 0xfffffe00, 65536); n++; }
    return n;
  };
  row("tableRunLength", "walk runs of 1–16, stride 8", entries * 8, walkWasm, walkTs);
  wasm.freeBuffer(t);
}

// ---- CRC-32C --------------------------------------------------------------------------------
for (const size of [4096, 1 << 20]) {
  const b = wasmBuf(size);
  for (let i = 0; i < size; i++) b[i] = (i * 2654435761) >>> 24;
  row("crc32c", "random bytes", size, () => wasm.crc32c(b), () => tsKernel.crc32c(b));
  wasm.freeBuffer(b);
}

// ---- copying into Wasm memory, for comparison -----------------------------------------------
if (!only || only === "copy") {
console.log("");
console.log("copy into Wasm memory vs scanning in place (why data is read straight into Wasm memory):");
for (const size of [64 * 1024, 1 << 20, 16 << 20]) {
  const src = new Uint8Array(size);
  src.fill(1); // commit the pages: a never-written buffer reads from the shared zero page
  src.fill(0);
  const dst = wasmBuf(size);
  const copy = measure(() => { dst.set(src); return dst[size - 1]; }, size);
  const scan = measure(() => wasm.findNonZero(dst, 0, size), size);
  const m = measurePair(() => { dst.set(src); return wasm.findNonZero(dst, 0, size); }, () => tsKernel.findNonZero(src, 0, size), size);
  console.log(
    `${fmtSize(size).padStart(8)}  copy ${copy.median.toFixed(2)} GB/s   wasm scan ${scan.median.toFixed(2)} GB/s   ` +
      `copy+wasm scan ${m.a.median.toFixed(2)} GB/s   ts scan in place ${m.b.median.toFixed(2)} GB/s   (copy+scan / ts ${m.ratio.toFixed(1)}x)`,
  );
  wasm.freeBuffer(dst);
}
}
if (!only || only === "load") {
  // Start-up cost: decode the embedded base64, compile, instantiate (memory + start function).
  const times = { decode: [], compile: [], instantiate: [] };
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    const bytes = kernelWasmBytes();
    const t1 = performance.now();
    const module = await WebAssembly.compile(bytes);
    const t2 = performance.now();
    await instantiateWasmKernel(module);
    const t3 = performance.now();
    times.decode.push(t1 - t0);
    times.compile.push(t2 - t1);
    times.instantiate.push(t3 - t2);
  }
  const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1].toFixed(3);
  console.log("");
  console.log(`load (${kernelWasmBytes().length} bytes of wasm): decode ${med(times.decode)} ms, compile ${med(times.compile)} ms, instantiate ${med(times.instantiate)} ms (medians)`);
}
if (markdown && rows.length > 0) {
  const f = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  console.log("");
  console.log("| kernel | case | size | Wasm median | TS median | ratio | Wasm best | TS best |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.kernel} | ${r.kase} | ${fmtSize(r.size)} | ${f(r.w.median)} | ${f(r.t.median)} | ${r.ratio.toFixed(1)}× | ${f(r.w.max)} | ${f(r.t.max)} |`);
  }
}
if (sink === 0.5) console.log(sink);
