/**
 * The TypeScript twin of the Wasm kernel: same contract, used as the fallback and as the
 * reference in parity tests.
 * @module
 */
import type { Kernel } from "./kernel.js";

function findNonZero(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  // Word-at-a-time over the aligned middle: 8 bytes per step through two u32 reads.
  const head = Math.min(to, (from + 3) & ~3);
  for (; i < head; i++) if (buf[i] !== 0) return i;
  if (((buf.byteOffset + i) & 3) === 0 && to - i >= 16) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset + i, (to - i) >>> 2);
    let w = 0;
    const n = words.length;
    for (; w + 4 <= n; w += 4) {
      if ((words[w] | words[w + 1] | words[w + 2] | words[w + 3]) !== 0) break;
    }
    i += w * 4;
  }
  for (; i < to; i++) if (buf[i] !== 0) return i;
  return to;
}

function granuleRunEnd(buf: Uint8Array, from: number, to: number, granule: number): number {
  if (from >= to) return from;
  const firstEnd = Math.min(to, from + granule);
  const firstZero = findNonZero(buf, from, firstEnd) === firstEnd;
  let pos = firstEnd;
  while (pos < to) {
    const end = Math.min(to, pos + granule);
    const zero = findNonZero(buf, pos, end) === end;
    if (zero !== firstZero) break;
    pos = end;
  }
  return pos;
}

function bit(bits: Uint8Array, i: number, msbFirst: boolean): number {
  const b = bits[i >>> 3];
  return msbFirst ? (b >>> (7 - (i & 7))) & 1 : (b >>> (i & 7)) & 1;
}

function nextBit(bits: Uint8Array, from: number, to: number, msbFirst: boolean, want: number): number {
  let i = from;
  const skip = want === 1 ? 0x00 : 0xff;
  while (i < to) {
    if ((i & 7) === 0 && i + 8 <= to && bits[i >>> 3] === skip) {
      i += 8;
      continue;
    }
    if (bit(bits, i, msbFirst) === want) return i;
    i++;
  }
  return to;
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
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const hi0 = view.getUint32(first * stride);
  const lo0 = view.getUint32(first * stride + 4);
  const clsHi = (hi0 & classMaskHi) >>> 0;
  const clsLo = (lo0 & classMaskLo) >>> 0;
  const off0 = ((hi0 & offsetMaskHi) >>> 0) * 4294967296 + ((lo0 & offsetMaskLo) >>> 0);
  let k = first + 1;
  for (; k < end; k++) {
    const hi = view.getUint32(k * stride);
    const lo = view.getUint32(k * stride + 4);
    if (((hi & classMaskHi) >>> 0) !== clsHi || ((lo & classMaskLo) >>> 0) !== clsLo) break;
    const off = ((hi & offsetMaskHi) >>> 0) * 4294967296 + ((lo & offsetMaskLo) >>> 0);
    if (off0 === 0 ? off !== 0 : off !== off0 + (k - first) * step) break;
  }
  return k - first;
}

let crcTable: Uint32Array | undefined;

function crc32c(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The TypeScript kernel. Stateless; safe to share. */
export const tsKernel: Kernel = {
  kind: "ts",
  findNonZero,
  granuleRunEnd,
  nextSetBit: (bits, from, to, msbFirst) => nextBit(bits, from, to, msbFirst, 1),
  nextClearBit: (bits, from, to, msbFirst) => nextBit(bits, from, to, msbFirst, 0),
  tableRunLength,
  crc32c,
  allocBuffer: (size) => new Uint8Array(size),
  freeBuffer: () => {},
};
