/**
 * qcow2 on-disk layout.
 *
 * Spec: QEMU `docs/interop/qcow2.txt` ("QCOW2 image format", versions 2 and 3, with the
 * compression type field, extended L2 entries, bitmaps and external data file extensions).
 *
 * All integers are big-endian on disk.
 *
 * ```
 *  file offset 0
 *  +----------------------------+  cluster 0
 *  | header (72 / >=104 bytes)  |
 *  | header extensions ...      |  type u32, length u32, data, pad to 8
 *  | end extension (type 0)     |
 *  | backing file name          |  (not NUL-terminated)
 *  +----------------------------+
 *  | refcount table             |  u64 entries -> refcount blocks (1 cluster each)
 *  | refcount blocks            |  refcount_bits-wide entries, one per host cluster
 *  | L1 table                   |  u64 entries -> L2 tables (1 cluster each)
 *  | L2 tables                  |  u64 (or 2 x u64 with extended L2) per guest cluster
 *  | data clusters              |  guest data, or compressed streams packed at byte offsets
 *  | snapshot table, bitmaps... |
 *  +----------------------------+
 * ```
 *
 * Every structure has one field list here; decode and encode both walk it.
 * @module
 */

/** "QFI\xfb". */
export const QCOW2_MAGIC = 0x514649fb;

/** Smallest and largest cluster_bits accepted (512 B .. 2 MiB, qemu's limits). */
export const QCOW2_MIN_CLUSTER_BITS = 9;
export const QCOW2_MAX_CLUSTER_BITS = 21;

/** Safety limits (qemu's implementation limits). */
export const QCOW2_MAX_L1_BYTES = 32 * 1024 * 1024;
export const QCOW2_MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const QCOW2_MAX_SNAPSHOTS = 65536;
export const QCOW2_MAX_SNAPSHOT_EXTRA = 1024;
export const QCOW2_MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024;
export const QCOW2_MAX_BACKING_NAME = 1023;
export const QCOW2_MAX_BITMAPS = 65535;
export const QCOW2_MAX_BITMAP_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** Header extension types. */
export const QCOW2_EXT_END = 0x00000000;
export const QCOW2_EXT_BACKING_FORMAT = 0xe2792aca;
export const QCOW2_EXT_FEATURE_TABLE = 0x6803f857;
export const QCOW2_EXT_BITMAPS = 0x23852875;
export const QCOW2_EXT_CRYPTO = 0x0537be77;
export const QCOW2_EXT_DATA_FILE = 0x44415441;

/** Incompatible feature bits. */
export const QCOW2_INCOMPAT_DIRTY = 1n << 0n;
export const QCOW2_INCOMPAT_CORRUPT = 1n << 1n;
export const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
export const QCOW2_INCOMPAT_COMPRESSION = 1n << 3n;
export const QCOW2_INCOMPAT_EXTL2 = 1n << 4n;
/** Incompatible bits this implementation understands. */
export const QCOW2_INCOMPAT_KNOWN = 0x1fn;
/** Names of incompatible bits for messages (the feature name table may name others). */
export const QCOW2_INCOMPAT_NAMES: Readonly<Record<number, string>> = {
  0: "dirty bit",
  1: "corrupt bit",
  2: "external data file",
  3: "compression type",
  4: "extended L2 entries",
};

/** Compatible feature bits. */
export const QCOW2_COMPAT_LAZY_REFCOUNTS = 1n << 0n;

/** Autoclear feature bits (this implementation keeps none of them: it maintains no bitmaps). */
export const QCOW2_AUTOCLEAR_BITMAPS = 1n << 0n;
export const QCOW2_AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

/** compression_type values. */
export const QCOW2_COMPRESSION_ZLIB = 0;
export const QCOW2_COMPRESSION_ZSTD = 1;

/** The unit of the compressed-cluster size field. */
export const QCOW2_COMPRESSED_SECTOR = 512;

// ---- L1 / L2 / refcount table entry bits, as (hi, lo) u32 halves of the big-endian u64 ----

/** Bit 63: refcount is exactly one (COPIED). */
export const QCOW2_OFLAG_COPIED_HI = 0x80000000;
/** Bit 62 of an L2 entry: compressed cluster. */
export const QCOW2_OFLAG_COMPRESSED_HI = 0x40000000;
/** Bit 0 of an L2 entry: reads as zeros (v3, standard L2 only). */
export const QCOW2_OFLAG_ZERO_LO = 0x1;
/** Bits 9-55: host offset. */
export const QCOW2_OFFSET_MASK_HI = 0x00ffffff;
export const QCOW2_OFFSET_MASK_LO = 0xfffffe00;
/** Reserved bits of a standard L2 entry (1-8 and 56-61). */
export const QCOW2_L2_RESERVED_HI = 0x3f000000;
export const QCOW2_L2_RESERVED_LO = 0x000001fe;
/** Reserved bits of an L1 entry (0-8 and 56-62). */
export const QCOW2_L1_RESERVED_HI = 0x7f000000;
export const QCOW2_L1_RESERVED_LO = 0x000001ff;
/** Reserved bits of a refcount table entry (0-8). */
export const QCOW2_REFT_RESERVED_LO = 0x000001ff;

/** Extended L2: subclusters per cluster; bitmap word layout (alloc bits low, zero bits high). */
export const QCOW2_SUBCLUSTERS = 32;
export const QCOW2_EXTL2_ALL_ALLOC = 0xffffffff;

const TWO32 = 4294967296;

/** The host offset held in bits 9-55 of an entry given as (hi, lo). */
export function qcow2EntryOffset(hi: number, lo: number): number {
  return (hi & QCOW2_OFFSET_MASK_HI) * TWO32 + ((lo & QCOW2_OFFSET_MASK_LO) >>> 0);
}

/** Splits a host offset (< 2^56) into the (hi, lo) halves of an entry's offset field. */
export function qcow2OffsetHi(offset: number): number {
  return Math.floor(offset / TWO32) & QCOW2_OFFSET_MASK_HI;
}
/** Low half of {@link qcow2OffsetHi}. */
export function qcow2OffsetLo(offset: number): number {
  return (offset % TWO32) & QCOW2_OFFSET_MASK_LO;
}

/**
 * A decoded compressed cluster descriptor (bits 0-61 of a compressed L2 entry):
 * `x = 62 - (cluster_bits - 8)`; bits 0..x-1 host byte offset, bits x..61 additional sectors.
 */
export interface Qcow2CompressedDescriptor {
  /** Host byte offset of the compressed stream (any alignment). */
  hostOffset: number;
  /** Bytes from `hostOffset` to the end of the last 512-byte sector used. */
  hostLength: number;
}

/** Decodes a compressed descriptor from an L2 entry's (hi, lo). */
export function qcow2DecodeCompressed(hi: number, lo: number, clusterBits: number): Qcow2CompressedDescriptor {
  const shift = 62 - (clusterBits - 8) - 32; // bit position of the sector count in `hi`
  const sectors = ((hi & 0x3fffffff) >>> shift) + 1;
  const offHi = hi & ((1 << shift) - 1);
  const hostOffset = offHi * TWO32 + (lo >>> 0);
  const hostLength = sectors * QCOW2_COMPRESSED_SECTOR - (hostOffset % QCOW2_COMPRESSED_SECTOR);
  return { hostOffset, hostLength };
}

/** Encodes a compressed L2 entry (flag included) for `length` bytes at `hostOffset`; [hi, lo]. */
export function qcow2EncodeCompressed(hostOffset: number, length: number, clusterBits: number): [number, number] {
  const shift = 62 - (clusterBits - 8) - 32;
  const extra = Math.floor((hostOffset + length - 1) / QCOW2_COMPRESSED_SECTOR) - Math.floor(hostOffset / QCOW2_COMPRESSED_SECTOR);
  const offHi = Math.floor(hostOffset / TWO32);
  const hi = (QCOW2_OFLAG_COMPRESSED_HI | (extra << shift) | offHi) >>> 0;
  return [hi, hostOffset % TWO32 >>> 0];
}

/** The largest host offset a compressed descriptor can hold for `clusterBits` (exclusive). */
export function qcow2CompressedOffsetLimit(clusterBits: number): number {
  return 2 ** (62 - (clusterBits - 8));
}

// ---- field lists ----

/** The width of one field. `u64` decodes to `bigint` (callers bound it before use). */
export type Qcow2FieldType = "u8" | "u16" | "u32" | "u64";

/** One field of a fixed-layout structure. */
export interface Qcow2Field {
  readonly name: string;
  readonly offset: number;
  readonly type: Qcow2FieldType;
}

/** The decoded value type of a field list. */
export type Qcow2Decoded<F extends readonly Qcow2Field[]> = {
  -readonly [K in F[number] as K["name"]]: K["type"] extends "u64" ? bigint : number;
};

/**
 * The header. Fields from `incompatible_features` on exist only in version 3 (header_length
 * >= 104); `compression_type` only when header_length > 104.
 */
export const QCOW2_HEADER_FIELDS = [
  { name: "magic", offset: 0, type: "u32" },
  { name: "version", offset: 4, type: "u32" },
  /** Offset of the backing file name, 0 for none. */
  { name: "backingFileOffset", offset: 8, type: "u64" },
  /** Length of the backing file name in bytes (<= 1023). */
  { name: "backingFileSize", offset: 16, type: "u32" },
  /** log2(cluster size), 9..21. */
  { name: "clusterBits", offset: 20, type: "u32" },
  /** Virtual size in bytes. */
  { name: "size", offset: 24, type: "u64" },
  /** 0 none, 1 AES, 2 LUKS. */
  { name: "cryptMethod", offset: 32, type: "u32" },
  /** Entries of the active L1 table. */
  { name: "l1Size", offset: 36, type: "u32" },
  { name: "l1TableOffset", offset: 40, type: "u64" },
  { name: "refcountTableOffset", offset: 48, type: "u64" },
  { name: "refcountTableClusters", offset: 56, type: "u32" },
  { name: "nbSnapshots", offset: 60, type: "u32" },
  { name: "snapshotsOffset", offset: 64, type: "u64" },
  // version 3
  { name: "incompatibleFeatures", offset: 72, type: "u64" },
  { name: "compatibleFeatures", offset: 80, type: "u64" },
  { name: "autoclearFeatures", offset: 88, type: "u64" },
  /** refcount_bits = 1 << refcount_order, order 0..6. */
  { name: "refcountOrder", offset: 96, type: "u32" },
  /** Length of the header structure, >= 104 and a multiple of 8. */
  { name: "headerLength", offset: 100, type: "u32" },
  { name: "compressionType", offset: 104, type: "u8" },
] as const satisfies readonly Qcow2Field[];

/** Header length of version 2 and the minimum of version 3. */
export const QCOW2_V2_HEADER_LENGTH = 72;
export const QCOW2_V3_HEADER_LENGTH = 104;
/** Header length written when compression_type is present (104 + 1, padded to 8). */
export const QCOW2_V3_HEADER_LENGTH_COMPRESSION = 112;

/** The raw decoded header. */
export type Qcow2RawHeader = Qcow2Decoded<typeof QCOW2_HEADER_FIELDS>;

/** A header extension record header; data follows, padded to 8 bytes. */
export const QCOW2_EXTENSION_FIELDS = [
  { name: "type", offset: 0, type: "u32" },
  { name: "length", offset: 4, type: "u32" },
] as const satisfies readonly Qcow2Field[];

/** Fixed part of a snapshot table entry; extra data, id, name and padding to 8 follow. */
export const QCOW2_SNAPSHOT_FIELDS = [
  { name: "l1TableOffset", offset: 0, type: "u64" },
  { name: "l1Size", offset: 8, type: "u32" },
  { name: "idStrSize", offset: 12, type: "u16" },
  { name: "nameSize", offset: 14, type: "u16" },
  { name: "dateSec", offset: 16, type: "u32" },
  { name: "dateNsec", offset: 20, type: "u32" },
  { name: "vmClockNsec", offset: 24, type: "u64" },
  { name: "vmStateSize", offset: 32, type: "u32" },
  { name: "extraDataSize", offset: 36, type: "u32" },
] as const satisfies readonly Qcow2Field[];
export const QCOW2_SNAPSHOT_FIXED_SIZE = 40;

/** Known snapshot extra data (offsets relative to the extra data); present when long enough. */
export const QCOW2_SNAPSHOT_EXTRA_FIELDS = [
  { name: "vmStateSizeLarge", offset: 0, type: "u64" },
  { name: "diskSize", offset: 8, type: "u64" },
  { name: "icount", offset: 16, type: "u64" },
] as const satisfies readonly Qcow2Field[];

/** Bitmaps header extension data. */
export const QCOW2_BITMAPS_EXT_FIELDS = [
  { name: "nbBitmaps", offset: 0, type: "u32" },
  { name: "reserved", offset: 4, type: "u32" },
  { name: "directorySize", offset: 8, type: "u64" },
  { name: "directoryOffset", offset: 16, type: "u64" },
] as const satisfies readonly Qcow2Field[];
export const QCOW2_BITMAPS_EXT_SIZE = 24;

/** Fixed part of a bitmap directory entry; extra data, name and padding to 8 follow. */
export const QCOW2_BITMAP_DIR_FIELDS = [
  { name: "tableOffset", offset: 0, type: "u64" },
  { name: "tableSize", offset: 8, type: "u32" },
  { name: "flags", offset: 12, type: "u32" },
  { name: "type", offset: 16, type: "u8" },
  { name: "granularityBits", offset: 17, type: "u8" },
  { name: "nameSize", offset: 18, type: "u16" },
  { name: "extraDataSize", offset: 20, type: "u32" },
] as const satisfies readonly Qcow2Field[];
export const QCOW2_BITMAP_DIR_FIXED_SIZE = 24;
export const QCOW2_BITMAP_FLAG_IN_USE = 1;
export const QCOW2_BITMAP_FLAG_AUTO = 2;

/** Full disk encryption header pointer extension. */
export const QCOW2_CRYPTO_EXT_FIELDS = [
  { name: "offset", offset: 0, type: "u64" },
  { name: "length", offset: 8, type: "u64" },
] as const satisfies readonly Qcow2Field[];

function fieldSize(t: Qcow2FieldType): number {
  return t === "u8" ? 1 : t === "u16" ? 2 : t === "u32" ? 4 : 8;
}

/** End of a field list (largest offset + size). */
export function qcow2FieldsSize(fields: readonly Qcow2Field[]): number {
  let end = 0;
  for (const f of fields) end = Math.max(end, f.offset + fieldSize(f.type));
  return end;
}

/**
 * Decodes the fields of `fields` that lie entirely inside `buf[at, at+limit)`; fields past
 * `limit` decode as 0 (the spec's "absent field" value).
 */
export function qcow2Decode<F extends readonly Qcow2Field[]>(
  fields: F,
  buf: Uint8Array,
  at = 0,
  limit = buf.length - at,
): Qcow2Decoded<F> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Record<string, number | bigint> = {};
  for (const f of fields) {
    const size = fieldSize(f.type);
    const present = f.offset + size <= limit;
    const p = at + f.offset;
    switch (f.type) {
      case "u8":
        out[f.name] = present ? view.getUint8(p) : 0;
        break;
      case "u16":
        out[f.name] = present ? view.getUint16(p) : 0;
        break;
      case "u32":
        out[f.name] = present ? view.getUint32(p) : 0;
        break;
      case "u64":
        out[f.name] = present ? view.getBigUint64(p) : 0n;
        break;
    }
  }
  return out as Qcow2Decoded<F>;
}

/** Encodes the fields that lie inside `buf[at, at+limit)` from `value`. */
export function qcow2Encode<F extends readonly Qcow2Field[]>(
  fields: F,
  value: Qcow2Decoded<F>,
  buf: Uint8Array,
  at = 0,
  limit = buf.length - at,
): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const v = value as Record<string, number | bigint>;
  for (const f of fields) {
    const size = fieldSize(f.type);
    if (f.offset + size > limit) continue;
    const p = at + f.offset;
    switch (f.type) {
      case "u8":
        view.setUint8(p, Number(v[f.name]));
        break;
      case "u16":
        view.setUint16(p, Number(v[f.name]));
        break;
      case "u32":
        view.setUint32(p, Number(v[f.name]));
        break;
      case "u64":
        view.setBigUint64(p, BigInt(v[f.name]));
        break;
    }
  }
}

/** Rounds `n` up to a multiple of 8 (extension and snapshot entry padding). */
export function qcow2Pad8(n: number): number {
  return (n + 7) & ~7;
}
