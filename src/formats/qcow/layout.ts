/**
 * QCOW version 1 on-disk layout.
 *
 * Reference: the QCOW (v1) format as QEMU implements it (`block/qcow.c`, QEMU 7.2); there is no
 * separate specification document. All integers are **big-endian**.
 *
 * ```
 *  offset 0                48         48+n (8-aligned)
 *  +-----------------------+----------+--------------------+----------------------------------+
 *  | header (48 bytes)     | backing  | L1 table           | L2 tables, data clusters and     |
 *  |                       | name (n) | l1Size × u64,      | compressed clusters, appended in |
 *  |                       |          | padded to 512      | allocation order                 |
 *  +-----------------------+----------+--------------------+----------------------------------+
 *
 *  guest offset:  | L1 index | L2 index (l2Bits) | offset in cluster (clusterBits) |
 * ```
 *
 * L1 entries are byte offsets of L2 tables (0 = not allocated). An L2 table holds `1 << l2Bits`
 * u64 entries:
 * - 0: cluster not allocated (reads from the backing file, or zeros);
 * - bit 63 clear: byte offset of the data cluster;
 * - bit 63 set: compressed cluster. Bits `[63 - clusterBits, 62]` hold the compressed size in
 *   bytes, bits `[0, 63 - clusterBits)` its byte offset. The data is a raw deflate stream
 *   (no zlib header, window of at most 4 KiB) that inflates to exactly one cluster.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** `QFI\xfb`. */
export const QCOW_MAGIC = 0x514649fb;
/** The only version this format has. */
export const QCOW_VERSION = 1;
/** `crypt_method` values. */
export const QCOW_CRYPT_NONE = 0;
export const QCOW_CRYPT_AES = 1;

/** The header, in file order. */
export const QCOW_HEADER = defineStruct(
  "QCOW header",
  "be",
  [
    /** {@link QCOW_MAGIC}. */
    { name: "magic", kind: "u32", at: 0 },
    /** {@link QCOW_VERSION}. */
    { name: "version", kind: "u32", at: 4 },
    /** Byte offset of the backing file name; 0 = no backing file. */
    { name: "backingFileOffset", kind: "u64", at: 8 },
    /** Length of the backing file name in bytes (not NUL-terminated). At most 1023. */
    { name: "backingFileSize", kind: "u32", at: 16 },
    /** Modification time of the backing file (seconds); written as 0, never checked. */
    { name: "mtime", kind: "u32", at: 20 },
    /** Virtual disk size in bytes (used rounded down to 512). */
    { name: "size", kind: "u64", at: 24 },
    /** log2 of the cluster size: 9..16. */
    { name: "clusterBits", kind: "u8", at: 32 },
    /** log2 of the number of entries per L2 table: 6..13 (L2 tables of 512 B..64 KiB). */
    { name: "l2Bits", kind: "u8", at: 33 },
    /** Unused; kept as found. */
    { name: "padding", kind: "u16", at: 34 },
    /** 0 = none, 1 = AES-CBC (refused by vdisk). */
    { name: "cryptMethod", kind: "u32", at: 36 },
    /** Byte offset of the L1 table (8-aligned in practice, not cluster-aligned). */
    { name: "l1TableOffset", kind: "u64", at: 40 },
  ],
  48,
);

/** The decoded header. */
export type QcowHeader = ReturnType<typeof QCOW_HEADER.decode>;

/** Size of the header in bytes (48). */
export const QCOW_HEADER_SIZE = QCOW_HEADER.size;

/** Valid `clusterBits` range (512 B .. 64 KiB clusters). */
export const QCOW_MIN_CLUSTER_BITS = 9;
export const QCOW_MAX_CLUSTER_BITS = 16;
/** Valid `l2Bits` range (L2 tables of 512 B .. 64 KiB). */
export const QCOW_MIN_L2_BITS = 6;
export const QCOW_MAX_L2_BITS = 13;
/** Longest backing file name QEMU accepts. */
export const QCOW_MAX_BACKING_NAME = 1023;
/**
 * Largest cluster vdisk compresses: QEMU inflates with a 4 KiB window, and a deflate stream of
 * at most 4 KiB of input can never refer further back than that.
 */
export const QCOW_MAX_COMPRESSED_CLUSTER = 4096;
/** Largest L1 table vdisk loads (4 Mi entries: 8 PiB with the default geometry). */
export const QCOW_MAX_L1_BYTES = 32 * 1024 * 1024;

/** One decoded L1/L2 entry. Offsets are bytes. */
export type QcowEntry =
  | { readonly kind: "unallocated" }
  | { readonly kind: "data"; readonly offset: number }
  | { readonly kind: "compressed"; readonly offset: number; readonly compressedSize: number };

const TWO32 = 0x100000000;

/**
 * Decodes the L2 entry at byte `pos` of `table`. A data offset of 2^53 or more decodes as
 * `Infinity` (callers reject it as lying past the end of the file).
 */
export function decodeQcowL2Entry(table: DataView, pos: number, clusterBits: number): QcowEntry {
  const hi = table.getUint32(pos, false);
  const lo = table.getUint32(pos + 4, false);
  if (hi === 0 && lo === 0) return { kind: "unallocated" };
  if (hi & 0x80000000) {
    // The size field starts at bit 63 - clusterBits, which is always in the high word.
    const sizeShift = 63 - clusterBits - 32;
    const compressedSize = ((hi & 0x7fffffff) >>> sizeShift) & ((1 << clusterBits) - 1);
    const offHi = hi & ((1 << sizeShift) - 1);
    const offset = offHi >= 0x200000 ? Infinity : offHi * TWO32 + lo;
    return { kind: "compressed", offset, compressedSize };
  }
  return { kind: "data", offset: hi >= 0x200000 ? Infinity : hi * TWO32 + lo };
}

/** Encodes an L2 entry at byte `pos` of `table`. */
export function encodeQcowL2Entry(table: DataView, pos: number, entry: QcowEntry, clusterBits: number): void {
  let hi = 0;
  let lo = 0;
  if (entry.kind !== "unallocated") {
    hi = Math.floor(entry.offset / TWO32);
    lo = entry.offset >>> 0;
    if (entry.kind === "compressed") {
      const sizeShift = 63 - clusterBits - 32;
      hi = (hi | 0x80000000 | (entry.compressedSize << sizeShift)) >>> 0;
    }
  }
  table.setUint32(pos, hi, false);
  table.setUint32(pos + 4, lo, false);
}

/** Reads the L1 entry (an L2 table offset, 0 = none) at byte `pos`; `Infinity` past 2^53. */
export function decodeQcowL1Entry(table: DataView, pos: number): number {
  const hi = table.getUint32(pos, false);
  return hi >= 0x200000 ? Infinity : hi * TWO32 + table.getUint32(pos + 4, false);
}

/** Writes an L1 entry. */
export function encodeQcowL1Entry(table: DataView, pos: number, l2Offset: number): void {
  table.setUint32(pos, Math.floor(l2Offset / TWO32), false);
  table.setUint32(pos + 4, l2Offset >>> 0, false);
}

/** Geometry derived from a header. */
export interface QcowGeometry {
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly l2Bits: number;
  /** Entries per L2 table. */
  readonly l2Entries: number;
  /** Bytes per L2 table. */
  readonly l2Bytes: number;
  /** Guest bytes one L2 table covers. */
  readonly l2Span: number;
  /** Entries in the L1 table. */
  readonly l1Entries: number;
}

/** The geometry of an image of `size` bytes with the given bits (already validated). */
export function qcowGeometry(size: number, clusterBits: number, l2Bits: number): QcowGeometry {
  const clusterSize = 2 ** clusterBits;
  const l2Entries = 2 ** l2Bits;
  const l2Span = clusterSize * l2Entries;
  return {
    clusterBits,
    clusterSize,
    l2Bits,
    l2Entries,
    l2Bytes: l2Entries * 8,
    l2Span,
    l1Entries: Math.ceil(size / l2Span),
  };
}

/**
 * The L2 size QEMU pairs with a cluster size: 512-byte clusters get 4096-entry (32 KiB) tables
 * (what `qemu-img create` uses with a backing file), others one cluster of entries (4 KiB
 * clusters get 512 entries, the default layout).
 */
export function qcowDefaultL2Bits(clusterBits: number): number {
  return clusterBits === 9 ? 12 : clusterBits - 3;
}
