// The Wasm kernel and its TS twin must agree exactly on random inputs, and both must agree with
// the obviously-correct reference loops below (byte by byte, bit by bit, BigInt, bitwise CRC).
import { beforeAll, describe, expect, it } from "vitest";
import { instantiateWasmKernel, tsKernel, type Kernel, type WasmKernel } from "../../src/kernel/index.js";

// ---- reference loops -------------------------------------------------------------------------

function refFindNonZero(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return i;
  return to;
}

function refGranuleRunEnd(buf: Uint8Array, from: number, to: number, granule: number): number {
  if (from >= to) return from;
  const isZero = (a: number, b: number) => refFindNonZero(buf, a, b) === b;
  const firstZero = isZero(from, Math.min(to, from + granule));
  let pos = from;
  while (pos < to) {
    const end = Math.min(to, pos + granule);
    if (isZero(pos, end) !== firstZero) break;
    pos = end;
  }
  return pos;
}

function refBit(bits: Uint8Array, i: number, msbFirst: boolean): number {
  return (bits[i >> 3] >> (msbFirst ? 7 - (i & 7) : i & 7)) & 1;
}

function refNextBit(bits: Uint8Array, from: number, to: number, msbFirst: boolean, want: number): number {
  for (let i = from; i < to; i++) if (refBit(bits, i, msbFirst) === want) return i;
  return to;
}

const U64 = (1n << 64n) - 1n;

function refTableRunLength(
  table: Uint8Array, first: number, end: number, stride: number,
  classMask: bigint, offsetMask: bigint, step: number,
): number {
  if (first >= end) return 0;
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const v0 = view.getBigUint64(first * stride);
  const off0 = v0 & offsetMask;
  let k = first + 1;
  for (; k < end; k++) {
    const v = view.getBigUint64(k * stride);
    if ((v & classMask) !== (v0 & classMask)) break;
    const want = off0 === 0n ? 0n : (off0 + BigInt(k - first) * BigInt(step)) & U64;
    if ((v & offsetMask) !== want) break;
  }
  return k - first;
}

function refCrc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

// ---- random inputs ---------------------------------------------------------------------------

const SEED = Number(process.env.KERNEL_SEED ?? 0x5eed1234);

/** mulberry32: small, seeded, reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let wasm: WasmKernel;
const rand = rng(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]) => xs[int(xs.length)];

/**
 * A view of Wasm memory at a random misalignment, and an equal plain copy for the TS twin.
 * Callers free `hold` when done.
 */
function buffers(length: number, fill: (b: Uint8Array) => void): { w: Uint8Array; p: Uint8Array; hold: Uint8Array } {
  const skew = int(64);
  const hold = wasm.allocBuffer(length + skew);
  const w = hold.subarray(skew, skew + length);
  w.fill(0);
  fill(w);
  return { w, p: w.slice(), hold };
}

/** Mostly zeros, with sparse non-zero bytes, favouring the edges and 16/64-byte boundaries. */
function sparse(b: Uint8Array): void {
  const n = b.length;
  if (n === 0 || rand() < 0.25) return;
  const count = 1 + int(4);
  for (let c = 0; c < count; c++) {
    const where = pick(["start", "end", "boundary", "any"] as const);
    let i = int(n);
    if (where === "start") i = int(Math.min(n, 20));
    if (where === "end") i = n - 1 - int(Math.min(n, 20));
    if (where === "boundary") i = Math.min(n - 1, (int(Math.max(1, n >> 4)) << 4) + pick([-1, 0, 1, 15]));
    b[Math.max(0, i)] = 1 + int(255);
  }
}

function randomLength(): number {
  return rand() < 0.8 ? int(300) : int(70_000);
}

function rangeIn(n: number): [number, number] {
  const from = int(n + 1);
  const to = from + int(n - from + 1);
  return rand() < 0.1 ? [0, n] : [from, to];
}

function agree(name: string, got: { wasm: number; ts: number; ref: number }, context: unknown): void {
  if (got.wasm !== got.ref || got.ts !== got.ref) {
    expect({ name, seed: SEED, ...got, context }).toEqual({ name, seed: SEED, wasm: got.ref, ts: got.ref, ref: got.ref, context });
  }
}

beforeAll(async () => {
  wasm = await instantiateWasmKernel();
});

describe("kernel parity (Wasm, TS twin, reference)", () => {
  it("the Wasm kernel scans its own buffers and hands others to the TS twin", () => {
    const own = wasm.allocBuffer(100);
    expect(wasm.kind).toBe("wasm");
    expect(wasm.ownsBuffer(own)).toBe(true);
    expect(wasm.ownsBuffer(new Uint8Array(100))).toBe(false);
    own.fill(0);
    own[77] = 1;
    const plain = new Uint8Array(100);
    plain[33] = 1;
    expect(wasm.findNonZero(own, 0, 100)).toBe(77);
    expect(wasm.findNonZero(plain, 0, 100)).toBe(33);
    wasm.freeBuffer(own);
  });

  it("findNonZero() agrees on random lengths, offsets and sparse bytes", () => {
    for (let round = 0; round < 3000; round++) {
      const n = randomLength();
      const { w, p, hold } = buffers(n, sparse);
      for (let q = 0; q < 4; q++) {
        const [from, to] = rangeIn(n);
        agree("findNonZero", {
          wasm: wasm.findNonZero(w, from, to),
          ts: tsKernel.findNonZero(p, from, to),
          ref: refFindNonZero(p, from, to),
        }, { n, from, to, skew: w.byteOffset & 63 });
      }
      wasm.freeBuffer(hold);
    }
  });

  it("findNonZero() finds every single non-zero byte position in a 200-byte buffer", () => {
    for (let pos = 0; pos < 200; pos++) {
      const { w, p, hold } = buffers(200, (b) => { b[pos] = 0x80; });
      for (const from of [0, 1, 15, 16, 17, pos]) {
        const want = from <= pos ? pos : 200;
        expect(wasm.findNonZero(w, from, 200)).toBe(want);
        expect(tsKernel.findNonZero(p, from, 200)).toBe(want);
      }
      expect(wasm.findNonZero(w, 0, pos)).toBe(pos);
      expect(tsKernel.findNonZero(p, 0, pos)).toBe(pos);
      wasm.freeBuffer(hold);
    }
  });

  it("findNonZero() returns the end for all-zero buffers of many lengths", () => {
    for (let n = 0; n < 300; n++) {
      const { w, p, hold } = buffers(n, () => {});
      expect(wasm.findNonZero(w, 0, n)).toBe(n);
      expect(tsKernel.findNonZero(p, 0, n)).toBe(n);
      wasm.freeBuffer(hold);
    }
  });

  it("granuleRunEnd() agrees on random granules and zero/data patterns", () => {
    for (let round = 0; round < 2000; round++) {
      const n = randomLength();
      const granule = pick([1, 2, 7, 16, 64, 512, 4096, 1 + int(1000), n + 5]);
      const { w, p, hold } = buffers(n, (b) => {
        // Runs of zero and data granules, some data granules with a single byte at an edge.
        for (let g = 0; g * granule < n; g++) {
          if (rand() < 0.5) continue;
          const end = Math.min(n, (g + 1) * granule);
          b[pick([g * granule, end - 1, g * granule + int(end - g * granule)])] = 1 + int(255);
        }
      });
      for (let q = 0; q < 3; q++) {
        const [from, to] = rangeIn(n);
        agree("granuleRunEnd", {
          wasm: wasm.granuleRunEnd(w, from, to, granule),
          ts: tsKernel.granuleRunEnd(p, from, to, granule),
          ref: refGranuleRunEnd(p, from, to, granule),
        }, { n, from, to, granule });
      }
      wasm.freeBuffer(hold);
    }
  });

  it("nextSetBit() and nextClearBit() agree in both bit orders on bitmaps with random runs", () => {
    for (let round = 0; round < 2000; round++) {
      const nbytes = rand() < 0.8 ? int(40) : int(3000);
      const { w, p, hold } = buffers(nbytes, (b) => {
        let bit = 0;
        let value = rand() < 0.5;
        while (bit < nbytes * 8) {
          const run = pick([1, 2, 7, 8, 9, 63, 64, 65, 500, 1 + int(5000)]);
          if (value) for (let i = bit; i < Math.min(nbytes * 8, bit + run); i++) b[i >> 3] |= 1 << (i & 7);
          bit += run;
          value = !value;
        }
      });
      for (let q = 0; q < 4; q++) {
        const [from, to] = rangeIn(nbytes * 8);
        for (const msbFirst of [false, true]) {
          const ctx = { nbytes, from, to, msbFirst };
          agree("nextSetBit", {
            wasm: wasm.nextSetBit(w, from, to, msbFirst),
            ts: tsKernel.nextSetBit(p, from, to, msbFirst),
            ref: refNextBit(p, from, to, msbFirst, 1),
          }, ctx);
          agree("nextClearBit", {
            wasm: wasm.nextClearBit(w, from, to, msbFirst),
            ts: tsKernel.nextClearBit(p, from, to, msbFirst),
            ref: refNextBit(p, from, to, msbFirst, 0),
          }, ctx);
        }
      }
      wasm.freeBuffer(hold);
    }
  });

  it("tableRunLength() agrees on tables with random contiguous runs and classes", () => {
    const masks: [bigint, bigint][] = [
      [0xc000_0000_0000_0001n, 0x00ff_ffff_ffff_fe00n], // qcow2 L2: flags + host offset
      [0n, 0xffff_ffff_ffff_ffffn],
      [0xffn, 0xffff_ffff_ffff_ff00n],
      [0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn],
    ];
    for (let round = 0; round < 1500; round++) {
      const stride = pick([8, 16]);
      const n = 1 + (rand() < 0.8 ? int(80) : int(2000));
      const [classMask, offsetMask] = rand() < 0.8 ? pick(masks)
        : [BigInt(int(2 ** 32)) << 32n | BigInt(int(2 ** 32)), BigInt(int(2 ** 32)) << 32n | BigInt(int(2 ** 32))];
      const step = pick([512, 65536, 2 ** 21, 1 + int(2 ** 30), int(2 ** 20) * 2 ** 20, 0]);
      const classes = [0n, 1n, 0x8000_0000_0000_0000n, 0x4000_0000_0000_0001n, 0xc000_0000_0000_0000n];
      const { w, p, hold } = buffers(n * stride, (b) => {
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        let k = 0;
        while (k < n) {
          const run = pick([1, 2, 3, 4, 16, 1 + int(100)]);
          const cls = pick(classes);
          // Offsets near 2^53 and 2^56 exercise exact 64-bit arithmetic; 0 means "no offset".
          const base = pick([0n, BigInt(int(2 ** 20)) << 9n, (1n << 53n) - BigInt(step) * 3n, (1n << 56n) - BigInt(int(1000)) * 512n]);
          for (let i = 0; i < run && k < n; i++, k++) {
            let v = cls | ((base === 0n ? 0n : base + BigInt(i) * BigInt(step)) & U64);
            if (rand() < 0.02) v ^= 1n << BigInt(int(64)); // a stray bit ends a run early
            view.setBigUint64(k * stride, v & U64);
            if (stride === 16) view.setBigUint64(k * stride + 8, BigInt(int(2 ** 32)));
          }
        }
      });
      const hiLo = (m: bigint) => [Number(m >> 32n), Number(m & 0xffff_ffffn)] as const;
      const [cHi, cLo] = hiLo(classMask);
      const [oHi, oLo] = hiLo(offsetMask);
      for (let q = 0; q < 4; q++) {
        const [first, end] = rangeIn(n);
        const ctx = { n, stride, first, end, step, classMask: classMask.toString(16), offsetMask: offsetMask.toString(16) };
        agree("tableRunLength", {
          wasm: wasm.tableRunLength(w, first, end, stride, cHi, cLo, oHi, oLo, step),
          ts: tsKernel.tableRunLength(p, first, end, stride, cHi, cLo, oHi, oLo, step),
          ref: refTableRunLength(p, first, end, stride, classMask, offsetMask, step),
        }, ctx);
      }
      wasm.freeBuffer(hold);
    }
  });

  it("crc32c() gives the check value 0xE3069283 for '123456789'", () => {
    const text = new TextEncoder().encode("123456789");
    const { w, hold } = buffers(text.length, (b) => b.set(text));
    expect(refCrc32c(text)).toBe(0xe3069283);
    expect(tsKernel.crc32c(text)).toBe(0xe3069283);
    expect(wasm.crc32c(w)).toBe(0xe3069283);
    wasm.freeBuffer(hold);
  });

  it("crc32c() agrees on random data and continues across split points", () => {
    for (let round = 0; round < 500; round++) {
      const n = rand() < 0.8 ? int(100) : int(20_000);
      const { w, p, hold } = buffers(n, (b) => { for (let i = 0; i < b.length; i++) b[i] = int(256); });
      const seed = rand() < 0.5 ? 0 : int(2 ** 32);
      agree("crc32c", { wasm: wasm.crc32c(w, seed), ts: tsKernel.crc32c(p, seed), ref: refCrc32c(p, seed) }, { n, seed });
      const cut = int(n + 1);
      const whole = refCrc32c(p);
      expect(wasm.crc32c(w.subarray(cut), wasm.crc32c(w.subarray(0, cut)))).toBe(whole);
      expect(tsKernel.crc32c(p.subarray(cut), tsKernel.crc32c(p.subarray(0, cut)))).toBe(whole);
      wasm.freeBuffer(hold);
    }
  });

  it("kernels never read past a buffer that ends at the end of Wasm memory", () => {
    // The arena runs to the end of linear memory, so one allocation of all of it ends there too.
    expect(wasm.arenaBytesInUse()).toBe(0);
    const all = wasm.allocBuffer(wasm.arenaBytes);
    expect(wasm.ownsBuffer(all)).toBe(true);
    try {
      for (const len of [0, 1, 3, 8, 15, 16, 17, 40, 100]) {
        const tail = all.subarray(all.length - len);
        tail.fill(0xff);
        if (len > 0) tail[len - 1] = 0x7f;
        expect(wasm.findNonZero(tail, 0, len)).toBe(0);
        tail.fill(0);
        expect(wasm.findNonZero(tail, 0, len)).toBe(len);
        expect(wasm.granuleRunEnd(tail, 0, len, 4)).toBe(len);
        expect(wasm.crc32c(tail)).toBe(refCrc32c(tail));
        for (const msbFirst of [false, true]) {
          expect(wasm.nextSetBit(tail, 0, len * 8, msbFirst)).toBe(len * 8);
          tail.fill(0xff);
          expect(wasm.nextClearBit(tail, 0, len * 8, msbFirst)).toBe(len * 8);
          tail.fill(0);
        }
        for (const stride of [8, 16]) {
          // `len` bytes hold entries up to the one whose first 8 bytes end the memory.
          const entries = len >= 8 ? Math.floor((len - 8) / stride) + 1 : 0;
          const table = all.subarray(all.length - ((entries - 1) * stride + 8));
          if (entries === 0) continue;
          table.fill(0);
          expect(wasm.tableRunLength(table, 0, entries, stride, 0, 0, 0xffffffff, 0xffffffff, 512)).toBe(entries);
        }
      }
    } finally {
      wasm.freeBuffer(all);
    }
  });
});

describe("kernel argument checks", () => {
  const kernels = (): [string, Kernel, Uint8Array][] => [["wasm", wasm, wasm.allocBuffer(64)], ["ts", tsKernel, new Uint8Array(64)]];

  it("both kernels reject ranges outside the buffer with RangeError", () => {
    for (const [, k, b] of kernels()) {
      expect(() => k.findNonZero(b, 0, 65)).toThrow(RangeError);
      expect(() => k.findNonZero(b, -1, 10)).toThrow(RangeError);
      expect(() => k.granuleRunEnd(b, 0, 65, 8)).toThrow(RangeError);
      expect(() => k.granuleRunEnd(b, 0, 64, 0)).toThrow(RangeError);
      expect(() => k.nextSetBit(b, 0, 513, false)).toThrow(RangeError);
      expect(() => k.nextClearBit(b, 0, 513, true)).toThrow(RangeError);
      expect(() => k.tableRunLength(b, 0, 9, 8, 0, 0, 0, 0, 512)).toThrow(RangeError);
      expect(() => k.tableRunLength(b, 0, 2, 4, 0, 0, 0, 0, 512)).toThrow(RangeError);
      expect(() => k.tableRunLength(b, 0, 2, 8, 0, 0, 0, 0, 0.5)).toThrow(RangeError);
      expect(() => k.allocBuffer(-1)).toThrow(RangeError);
      // Empty ranges are not errors.
      expect(k.findNonZero(b, 70, 70)).toBe(70);
      expect(k.granuleRunEnd(b, 70, 70, 8)).toBe(70);
      expect(k.nextSetBit(b, 900, 900, false)).toBe(900);
      expect(k.tableRunLength(b, 9, 9, 8, 0, 0, 0, 0, 512)).toBe(0);
      k.freeBuffer(b);
    }
  });
});
