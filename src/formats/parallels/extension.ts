/**
 * Reading the Parallels format extension (the cluster `extOff` points at) to learn which
 * clusters it and its dirty bitmaps occupy. vdisk never rewrites the extension: it keeps those
 * clusters out of allocation, leak checks and truncation, so they survive writes and repairs.
 * @module
 */
import { formatUuid } from "../../codec/uuid.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import {
  PARALLELS_EXT_MAGIC,
  PARALLELS_FEATURE_DIRTY_BITMAP,
  PARALLELS_FEATURE_END,
  ParallelsDirtyBitmapCodec,
  ParallelsExtHeaderCodec,
  ParallelsFeatureHeaderCodec,
} from "./layout.js";

/** A dirty bitmap stored in the extension. */
export interface ParallelsBitmapInfo {
  readonly id: string;
  /** Sectors per bit. */
  readonly granularity: number;
  /** Bits (sectors of the disk). */
  readonly size: number;
  /** Bitmap clusters stored in the file (L1 entries other than 0 and 1). */
  readonly storedClusters: number;
}

/** What the extension holds. */
export interface ParallelsExtension {
  /** File offsets of the clusters the extension uses (its own cluster first), all inside the file. */
  readonly clusters: number[];
  readonly bitmaps: ParallelsBitmapInfo[];
  /** Magic numbers (hex) of features vdisk does not know. */
  readonly unknownFeatures: string[];
  /** Why the extension could not be read fully (it is still kept), if it could not. */
  readonly problem?: string;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex64(b: Uint8Array): string {
  return `0x${Array.from(b).reverse().map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Reads the extension cluster at byte offset `at`. Structures that do not fit the cluster or the
 * file end the walk with a `problem`; nothing here throws for bad content.
 */
export async function readParallelsExtension(
  file: IoBackend,
  fileSize: number,
  at: number,
  clusterSize: number,
): Promise<ParallelsExtension> {
  const clusters: number[] = [];
  const bitmaps: ParallelsBitmapInfo[] = [];
  const unknownFeatures: string[] = [];
  const done = (problem?: string): ParallelsExtension => ({ clusters, bitmaps, unknownFeatures, problem });
  // Only clusters inside the file are listed: the list sizes the map of clusters in use.
  if (at + clusterSize > fileSize) return done(`the format extension cluster at offset ${at} lies past the end of the file`);
  clusters.push(at);
  const buf = await readExact(file, at, clusterSize, "format extension", "parallels");
  const head = ParallelsExtHeaderCodec.decode(buf);
  if (!same(head.magic, PARALLELS_EXT_MAGIC)) return done(`the format extension at offset ${at} has a wrong magic`);
  let pos = ParallelsExtHeaderCodec.size;
  for (;;) {
    if (pos + ParallelsFeatureHeaderCodec.size > clusterSize) return done("the format extension has no end-of-features marker");
    const f = ParallelsFeatureHeaderCodec.decode(buf, pos);
    if (same(f.magic, PARALLELS_FEATURE_END)) return done();
    const dataAt = pos + ParallelsFeatureHeaderCodec.size;
    if (f.dataSize > clusterSize - dataAt) return done(`a format extension feature of ${f.dataSize} bytes overflows its cluster`);
    if (same(f.magic, PARALLELS_FEATURE_DIRTY_BITMAP)) {
      if (f.dataSize < ParallelsDirtyBitmapCodec.size) return done("a dirty bitmap feature is too short");
      let bm: ReturnType<typeof ParallelsDirtyBitmapCodec.decode>;
      try {
        bm = ParallelsDirtyBitmapCodec.decode(buf, dataAt);
      } catch {
        return done("a dirty bitmap feature has a size past 2^53");
      }
      if (ParallelsDirtyBitmapCodec.size + bm.l1Size * 8 > f.dataSize) return done("a dirty bitmap's L1 table overflows its feature");
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      let stored = 0;
      for (let i = 0; i < bm.l1Size; i++) {
        const o = dataAt + ParallelsDirtyBitmapCodec.size + i * 8;
        const lo = dv.getUint32(o, true);
        const hi = dv.getUint32(o + 4, true);
        if (hi === 0 && lo <= 1) continue; // all zeros / all ones: no cluster
        const off = (hi * 4294967296 + lo) * 512;
        if (hi > 0x3fff || off + clusterSize > fileSize) return done(`a dirty bitmap cluster at sector ${hi * 4294967296 + lo} lies past the end of the file`);
        clusters.push(off);
        stored++;
      }
      bitmaps.push({ id: formatUuid(bm.id), granularity: bm.granularity, size: bm.size, storedClusters: stored });
    } else {
      unknownFeatures.push(hex64(f.magic));
    }
    pos = dataAt + Math.ceil(f.dataSize / 8) * 8;
  }
}
