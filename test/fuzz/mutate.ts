/**
 * Structure-aware mutations of valid images for the fuzz run. The sites are the image's
 * metadata: every file range that holds no guest data (headers, footers, tables, bitmaps,
 * descriptors, journals), found through the library's own extents of the unmutated image,
 * with a bias towards the populated words of those ranges (table entries and header fields)
 * and the head of the file. A mutation writes an interesting value into an aligned field
 * (both byte orders, widths 1–8), flips a bit, or truncates the file.
 */

/** A seeded PRNG (mulberry32) returning numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where a valid image keeps metadata. */
export interface MutationSites {
  /** [start, end) file ranges holding no guest data. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  /** Offsets (4-aligned) of non-zero 32-bit words inside those ranges. */
  readonly words: readonly number[];
}

/** Sites of `image` given the file ranges that hold guest data. */
export function findSites(image: Uint8Array, dataRanges: ReadonlyArray<readonly [number, number]>): MutationSites {
  const sorted = [...dataRanges].sort((a, b) => a[0] - b[0]);
  const ranges: Array<[number, number]> = [];
  let pos = 0;
  for (const [s, e] of sorted) {
    if (s > pos) ranges.push([pos, Math.min(s, image.length)]);
    pos = Math.max(pos, e);
  }
  if (pos < image.length) ranges.push([pos, image.length]);
  const words: number[] = [];
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  for (const [s, e] of ranges) {
    for (let o = Math.ceil(s / 4) * 4; o + 4 <= e; o += 4) if (dv.getUint32(o) !== 0) words.push(o);
  }
  return { ranges, words };
}

const TWO32 = 2 ** 32;

/** One applied mutation, for the failure report. */
export interface Mutation {
  readonly what: string;
}

/** A mutant: `image` changed in place (view `bytes`); `undo()` restores the valid image. */
export interface Mutant {
  readonly bytes: Uint8Array;
  readonly done: Mutation[];
  undo(): void;
}

/**
 * Applies 1–3 mutations to `image` in place (copying a multi-megabyte image per mutant costs
 * more than running it); the caller runs the mutant read-only and then calls `undo()`.
 */
export function mutate(image: Uint8Array, sites: MutationSites, r: () => number, clusterHint: number): Mutant {
  let length = image.length;
  const saved: Array<[number, Uint8Array]> = [];
  const done: Mutation[] = [];
  const n = 1 + Math.floor(r() * 3);
  for (let k = 0; k < n; k++) {
    const roll = r();
    if (roll < 0.05) {
      length = Math.floor(r() * length);
      done.push({ what: `truncate to ${length}` });
      continue;
    }
    const at = pickSite(length, sites, r);
    if (at < 0 || at >= length) continue;
    if (roll < 0.2) {
      const bit = Math.floor(r() * 8);
      saved.push([at, image.slice(at, at + 1)]);
      image[at] ^= 1 << bit;
      done.push({ what: `flip bit ${bit} at ${at}` });
      continue;
    }
    const widths = [1, 2, 4, 8];
    const width = widths[Math.floor(r() * widths.length)];
    const o = Math.max(0, Math.min(length - width, at - (at % width)));
    if (o + width > length) continue;
    const le = r() < 0.5;
    const old = readUint(image, o, width, le);
    const v = interesting(r, width, old, image.length, clusterHint);
    saved.push([o, image.slice(o, o + width)]);
    writeUint(image, o, width, le, v);
    done.push({ what: `${le ? "le" : "be"}${width * 8} at ${o}: ${old} -> ${v}` });
  }
  return {
    bytes: image.subarray(0, length),
    done,
    undo: () => {
      for (let i = saved.length - 1; i >= 0; i--) image.set(saved[i][1], saved[i][0]);
    },
  };
}

function pickSite(length: number, sites: MutationSites, r: () => number): number {
  const roll = r();
  if (roll < 0.45 && sites.words.length > 0) return sites.words[Math.floor(r() * sites.words.length)] + Math.floor(r() * 4);
  if (roll < 0.7) return Math.floor(r() * Math.min(length, 1024));
  let total = 0;
  for (const [s, e] of sites.ranges) total += e - s;
  if (total === 0) return Math.floor(r() * length);
  let pick = Math.floor(r() * total);
  for (const [s, e] of sites.ranges) {
    if (pick < e - s) return s + pick;
    pick -= e - s;
  }
  return 0;
}

function interesting(r: () => number, width: number, old: number, fileSize: number, cluster: number): number {
  const max = width === 8 ? 2 ** 64 - 1 : 2 ** (width * 8) - 1;
  const pool = [
    0, 1, 2, 7, 0x7f, 0x80, 0xff, 0x100, 0x1ff, 0x200, 0xfff, 0x1000, 0xffff, 0x10000,
    0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, TWO32, TWO32 * 512,
    2 ** 53 - 1, 2 ** 53, 2 ** 56, 2 ** 62, 2 ** 63, max,
    fileSize, fileSize - 1, fileSize + 1, fileSize + cluster, fileSize * 2,
    old + 1, old - 1, old * 2, Math.floor(old / 2), old + cluster, old - cluster, old * 512,
    cluster, cluster * 3, Math.floor(r() * fileSize), Math.floor(r() * max),
  ];
  const v = pool[Math.floor(r() * pool.length)];
  if (!(v >= 0)) return 0;
  return Math.min(v, max);
}

function readUint(b: Uint8Array, o: number, width: number, le: boolean): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + b[o + (le ? width - 1 - i : i)];
  return v;
}

function writeUint(b: Uint8Array, o: number, width: number, le: boolean, value: number): void {
  // Exact for values below 2^53; larger ones (2^56, 2^63, 2^64-1) are byte patterns anyway.
  const limit = 1n << BigInt(width * 8);
  let big = BigInt(Math.floor(value));
  if (big >= limit) big = limit - 1n;
  for (let i = width - 1; i >= 0; i--) {
    b[o + (le ? width - 1 - i : i)] = Number(big & 0xffn);
    big >>= 8n;
  }
}
