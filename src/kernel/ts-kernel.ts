/**
 * The TypeScript twin of the Wasm kernel: same contract, used as the fallback where WebAssembly
 * is unavailable, for buffers outside Wasm memory, and as the other side of the parity tests.
 * It is written to be reasonably fast (word-at-a-time scans, slicing-by-8 CRC), so benchmark
 * ratios against it are honest.
 * @module
 */
import { checkGranule, checkRange, checkSize, checkTable } from "./kernel-args.js";
import type { Kernel } from "./kernel.js";

/**
 * Index of the first byte of `buf[from, to)` that is not `fill` (0x00 or 0xff), or `to`.
 * Ranges of 64 bytes or more are scanned 32 bits at a time, 8 words per step, through a
 * `Uint32Array` over the aligned middle.
 */
function firstByteNot(buf: Uint8Array, from: number, to: number, fill: number): number {
  let i = from;
  if (to - i >= 64) {
    const head = i + ((4 - ((buf.byteOffset + i) & 3)) & 3);
    for (; i < head; i++) if (buf[i] !== fill) return i;
    const words = new Uint32Array(buf.buffer, buf.byteOffset + i, (to - i) >>> 2);
    const n = words.length;
    let w = 0;
    if (fill === 0) {
      for (; w + 8 <= n; w += 8) {
        if ((words[w] | words[w + 1] | words[w + 2] | words[w + 3] | words[w + 4] | words[w + 5] | words[w + 6] | words[w + 7]) !== 0) break;
      }
      while (w < n && words[w] === 0) w++;
    } else {
      for (; w + 8 <= n; w += 8) {
        if ((words[w] & words[w + 1] & words[w + 2] & words[w + 3] & words[w + 4] & words[w + 5] & words[w + 6] & words[w + 7]) !== -1) break;
      }
      while (w < n && words[w] === 0xffffffff) w++;
    }
    i += w * 4;
  }
  for (; i < to; i++) if (buf[i] !== fill) return i;
  return to;
}

function findNonZero(buf: Uint8Array, from: number, to: number): number {
  if (from >= to) return to;
  checkRange("buffer length", buf.length, from, to);
  return firstByteNot(buf, from, to, 0);
}

function granuleRunEnd(buf: Uint8Array, from: number, to: number, granule: number): number {
  checkGranule(granule);
  if (from >= to) return from;
  checkRange("buffer length", buf.length, from, to);
  const firstEnd = to - from <= granule ? to : from + granule;
  if (firstByteNot(buf, from, firstEnd, 0) === firstEnd) {
    // A zero run ends at the granule holding the first non-zero byte: one scan suffices.
    const nz = firstByteNot(buf, firstEnd, to, 0);
    return nz === to ? to : from + Math.floor((nz - from) / granule) * granule;
  }
  let pos = firstEnd;
  while (pos < to) {
    const end = to - pos <= granule ? to : pos + granule;
    if (firstByteNot(buf, pos, end, 0) === end) break;
    pos = end;
  }
  return pos;
}

function nextBit(bits: Uint8Array, from: number, to: number, msbFirst: boolean, set: boolean): number {
  if (from >= to) return to;
  checkRange("bitmap length in bits", bits.length * 8, from, to);
  const fill = set ? 0x00 : 0xff;
  let byte = from >>> 3;
  const s = from & 7;
  let b = (bits[byte] ^ fill) & (msbFirst ? 0xff >>> s : (0xff << s) & 0xff);
  if (b === 0) {
    const lastByte = (to - 1) >>> 3;
    if (byte === lastByte) return to;
    byte = firstByteNot(bits, byte + 1, lastByte + 1, fill);
    if (byte > lastByte) return to;
    b = bits[byte] ^ fill;
  }
  const bit = msbFirst ? Math.clz32(b) - 24 : 31 - Math.clz32(b & -b);
  const i = byte * 8 + bit;
  return i < to ? i : to;
}

function tableRunLength(
  table: Uint8Array,
  first: number,
  end: number,
  stride: number,
  classMaskHi: number,
  classMaskLo: number,
  offsetMaskHi: number,
  offsetMaskLo: number,
  step: number,
): number {
  if (first >= end) return 0;
  checkTable(table.length, first, end, stride, step);
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const cHi = classMaskHi >>> 0;
  const cLo = classMaskLo >>> 0;
  const oHi = offsetMaskHi >>> 0;
  const oLo = offsetMaskLo >>> 0;
  const hi0 = view.getUint32(first * stride);
  const lo0 = view.getUint32(first * stride + 4);
  const clsHi = (hi0 & cHi) >>> 0;
  const clsLo = (lo0 & cLo) >>> 0;
  // The expected offset is kept as two u32 halves so it is exact (mod 2^64) past 2^53.
  let wantHi = (hi0 & oHi) >>> 0;
  let wantLo = (lo0 & oLo) >>> 0;
  const unmapped = wantHi === 0 && wantLo === 0;
  const stepHi = unmapped ? 0 : Math.floor(step / 4294967296);
  const stepLo = unmapped ? 0 : step >>> 0;
  let k = first + 1;
  for (; k < end; k++) {
    const lo = wantLo + stepLo;
    const carry = lo >= 4294967296 ? 1 : 0;
    wantLo = lo - carry * 4294967296;
    wantHi = (wantHi + stepHi + carry) >>> 0;
    const hi = view.getUint32(k * stride);
    const lo2 = view.getUint32(k * stride + 4);
    if (((hi & cHi) >>> 0) !== clsHi || ((lo2 & cLo) >>> 0) !== clsLo) break;
    if (((hi & oHi) >>> 0) !== wantHi || ((lo2 & oLo) >>> 0) !== wantLo) break;
  }
  return k - first;
}

let crcTables: Uint32Array | undefined;

/** Slicing-by-8 tables: table t maps a byte to its CRC contribution t bytes further along. */
function crc32cTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let s = 1; s < 8; s++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[s * 256 + n] = c;
    }
  }
  return t;
}

function crc32c(data: Uint8Array, crc = 0): number {
  const t = (crcTables ??= crc32cTables());
  let c = ~crc;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    c = t[0x700 + (a & 0xff)] ^ t[0x600 + ((a >>> 8) & 0xff)] ^ t[0x500 + ((a >>> 16) & 0xff)] ^ t[0x400 + (a >>> 24)]
      ^ t[0x300 + data[i + 4]] ^ t[0x200 + data[i + 5]] ^ t[0x100 + data[i + 6]] ^ t[data[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The TypeScript kernel. Stateless; safe to share. Its buffers are plain zeroed `Uint8Array`s. */
export const tsKernel: Kernel = {
  kind: "ts",
  findNonZero,
  granuleRunEnd,
  nextSetBit: (bits, from, to, msbFirst) => nextBit(bits, from, to, msbFirst, true),
  nextClearBit: (bits, from, to, msbFirst) => nextBit(bits, from, to, msbFirst, false),
  tableRunLength,
  crc32c,
  allocBuffer: (size) => {
    checkSize(size);
    return new Uint8Array(size);
  },
  freeBuffer: () => {},
};
