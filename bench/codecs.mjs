#!/usr/bin/env node
// The compression codecs in-process (issue 17): MB/s of guest data for deflate/inflate with the
// JavaScript codecs (fflate) and node:zlib (thread pool, 8 in flight), zstd decoding through
// vdisk's fzstd call and through fzstd(dat, buf) as vdisk called it before (the buffer
// stringified per frame), and the Wasm zstd encoder. 64 KiB clusters that deflate to about half.
// Needs a build (dist/). Not a comparison with qemu-img: bench/compressed.mjs is.
// The Node entry (dist/ has no per-module JavaScript): it also installs the Wasm zstd encoder.
import { JS_COMPRESSION_CODECS as js, nodeCompressionCodecs } from "../dist/node.js";
import { decompress } from "fzstd";
const native = { ...js, ...nodeCompressionCodecs() };
const N = Number(process.argv[2] ?? 400), CS = 65536;
const data = [];
let s = 12345;
for (let k = 0; k < 16; k++) { const b = new Uint8Array(CS); for (let i = 0; i < CS;) { s = (s * 1103515245 + 12345) >>> 0; const n = (s >>> 8) & 15 || 1; b.fill(s >>> 24, i, i + n); i += n; } data.push(b); }
const z = await Promise.all(data.map((d) => js.deflateRaw(d, 6)));
const zs = await Promise.all(data.map((d) => js.zstdCompress(d, 3)));
async function time(label, fn, par) { const t0 = performance.now(); let inflight = []; for (let i = 0; i < N; i++) { inflight.push(fn(i % 16)); if (inflight.length >= par) { await Promise.all(inflight); inflight = []; } } await Promise.all(inflight); const ms = performance.now() - t0; console.log(label.padEnd(40), (N * CS / 1048576 / (ms / 1000)).toFixed(0), "MB/s"); }
const out = () => new Uint8Array(CS);
await time("inflate fflate (js)", (i) => js.inflateRaw(z[i], out()), 1);
await time("inflate node:zlib, 8 in flight", (i) => native.inflateRaw(z[i], out()), 8);
await time("deflate fflate (js)", (i) => js.deflateRaw(data[i], 6), 1);
await time("deflate node:zlib, 8 in flight", (i) => native.deflateRaw(data[i], 6), 8);
await time("zstd decode, vdisk's fzstd call", (i) => js.zstdDecompress(zs[i], out()), 1);
await time("zstd decode, fzstd(dat, buf) as before", async (i) => decompress(zs[i], out()), 1);
await time("zstd encode (wasm, copy-out fixed)", (i) => js.zstdCompress(data[i], 3), 1);
