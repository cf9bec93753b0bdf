/**
 * QED (QEMU Enhanced Disk) on-disk layout.
 *
 * Reference: "QED Image File Format Specification", QEMU `docs/interop/qed_spec.txt`.
 * All integers are **little-endian**.
 *
 * ```
 *  cluster 0 .. headerSize-1          l1TableOffset          appended in allocation order
 *  +--------+---------------+---------+-------------------+-----------------------------------+
 *  | header | backing name  | (spare) | L1 table          | L2 tables and data clusters       |
 *  | 64 B   | (in header    |         | tableSize clusters| (tables are tableSize clusters)   |
 *  |        |  clusters)    |         |                   |                                   |
 *  +--------+---------------+---------+-------------------+-----------------------------------+
 *
 *  guest offset: | L1 index (tableBits) | L2 index (tableBits) | offset in cluster (clusterBits) |
 *  with tableBits = log2(tableSize × clusterSize / 8)
 * ```
 *
 * L1 entries are L2 table offsets (0 = not allocated). L2 entries are data cluster offsets:
 * 0 = not allocated (read the backing file, or zeros), 1 = zero cluster (reads zeros, hides the
 * backing file), otherwise a cluster-aligned offset inside the file.
 *
 * `features` bits: an image with an unknown one must not be opened. Unknown `compatFeatures`
 * are ignored and kept; unknown `autoclearFeatures` are cleared when the image is written.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** `QED\0` read as a little-endian u32. */
export const QED_MAGIC = 0x00444551;

/** The header, in file order. */
export const QED_HEADER = defineStruct(
  "QED header",
  "le",
  [
    /** {@link QED_MAGIC}. */
    { name: "magic", kind: "u32", at: 0 },
    /** Bytes per cluster: a power of two, 4 KiB .. 64 MiB. */
    { name: "clusterSize", kind: "u32", at: 4 },
    /** Clusters per L1/L2 table: a power of two, 1 .. 16. */
    { name: "tableSize", kind: "u32", at: 8 },
    /** Clusters taken by the header and what follows it (backing name). */
    { name: "headerSize", kind: "u32", at: 12 },
    /** Incompatible feature bits, a u64 bitmap ({@link qedFeatureBits}). */
    { name: "features", kind: "bytes", length: 8, at: 16 },
    /** Compatible feature bits (none defined; kept as found). */
    { name: "compatFeatures", kind: "bytes", length: 8, at: 24 },
    /** Feature bits a program that does not know them clears (none defined). */
    { name: "autoclearFeatures", kind: "bytes", length: 8, at: 32 },
    /** Byte offset of the L1 table, cluster-aligned. */
    { name: "l1TableOffset", kind: "u64", at: 40 },
    /** Virtual disk size in bytes, a multiple of 512. */
    { name: "imageSize", kind: "u64", at: 48 },
    /** Byte offset of the backing file name (when {@link QED_F_BACKING_FILE}). */
    { name: "backingFilenameOffset", kind: "u32", at: 56 },
    /** Length of the backing file name in bytes, not NUL-terminated. */
    { name: "backingFilenameSize", kind: "u32", at: 60 },
  ],
  64,
);

/** The decoded header. */
export type QedHeader = ReturnType<typeof QED_HEADER.decode>;

/** Size of the header structure in bytes (64). */
export const QED_HEADER_SIZE = QED_HEADER.size;

/** A feature bitmap field as a number of bits (headers only: not a hot path). */
export function qedFeatureBits(field: Uint8Array): bigint {
  return new DataView(field.buffer, field.byteOffset, 8).getBigUint64(0, true);
}

/** A feature bitmap as the 8 bytes of its header field. */
export function qedFeatureBytes(bits: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, bits, true);
  return b;
}

/** The image has a backing file. */
export const QED_F_BACKING_FILE = 0x01n;
/** The image needs a consistency check before use (set while allocating writes are unflushed). */
export const QED_F_NEED_CHECK = 0x02n;
/** The backing file is raw: never probe its format. */
export const QED_F_BACKING_FORMAT_NO_PROBE = 0x04n;
/** Every feature bit vdisk understands. */
export const QED_FEATURE_MASK = QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE;
/** Autoclear bits vdisk understands (none). */
export const QED_AUTOCLEAR_FEATURE_MASK = 0n;

export const QED_MIN_CLUSTER_SIZE = 4096;
export const QED_MAX_CLUSTER_SIZE = 64 * 1024 * 1024;
export const QED_DEFAULT_CLUSTER_SIZE = 65536;
export const QED_MIN_TABLE_SIZE = 1;
export const QED_MAX_TABLE_SIZE = 16;
export const QED_DEFAULT_TABLE_SIZE = 4;
/** Longest backing file name accepted (QEMU keeps names in a 4 KiB buffer). */
export const QED_MAX_BACKING_NAME = 4095;
/** Largest table vdisk loads (a 64 MiB cluster × 4 table: what qemu-img can create). */
export const QED_MAX_TABLE_BYTES = 256 * 1024 * 1024;

/** L2 entry of a zero cluster. */
export const QED_ZERO_CLUSTER = 1;

/** True when `n` is a power of two in `[min, max]`. */
export function qedPowerOfTwoIn(n: number, min: number, max: number): boolean {
  return n >= min && n <= max && (n & (n - 1)) === 0;
}

/** Geometry derived from a header. */
export interface QedGeometry {
  readonly clusterSize: number;
  readonly tableSize: number;
  /** Bytes per table (L1 or L2). */
  readonly tableBytes: number;
  /** Entries per table. */
  readonly tableEntries: number;
  /** Guest bytes one L2 table covers. */
  readonly l2Span: number;
  /** Bytes before the first regular cluster (`headerSize` clusters). */
  readonly headerBytes: number;
}

/** The geometry of validated header values. */
export function qedGeometry(clusterSize: number, tableSize: number, headerSize: number): QedGeometry {
  const tableBytes = clusterSize * tableSize;
  const tableEntries = tableBytes / 8;
  return {
    clusterSize,
    tableSize,
    tableBytes,
    tableEntries,
    l2Span: tableEntries * clusterSize,
    headerBytes: headerSize * clusterSize,
  };
}

/** The largest virtual size the tables can address: entries² × cluster size. */
export function qedMaxImageSize(clusterSize: number, tableSize: number): number {
  const entries = (clusterSize * tableSize) / 8;
  return entries * entries * clusterSize;
}

const TWO32 = 0x100000000;

/** Reads table entry `index` of `table` (LE u64); `Infinity` at 2^53 or more. */
export function readQedEntry(table: DataView, index: number): number {
  const hi = table.getUint32(index * 8 + 4, true);
  return hi >= 0x200000 ? Infinity : hi * TWO32 + table.getUint32(index * 8, true);
}

/** Writes table entry `index` of `table`. */
export function writeQedEntry(table: DataView, index: number, value: number): void {
  table.setUint32(index * 8, value >>> 0, true);
  table.setUint32(index * 8 + 4, Math.floor(value / TWO32), true);
}
