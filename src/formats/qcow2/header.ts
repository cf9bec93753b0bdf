/**
 * The qcow2 header and its extensions: decoding with every field bounded, and encoding the
 * first cluster (header, extensions kept as found, backing file name).
 * @module
 */
import { formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { hex, qcow2Corrupt, qcow2Limit, qcow2Unsupported } from "./errors.js";
import {
  QCOW2_BITMAPS_EXT_FIELDS,
  QCOW2_BITMAPS_EXT_SIZE,
  QCOW2_COMPRESSION_ZLIB,
  QCOW2_COMPRESSION_ZSTD,
  QCOW2_EXTENSION_FIELDS,
  QCOW2_EXT_BACKING_FORMAT,
  QCOW2_EXT_BITMAPS,
  QCOW2_EXT_DATA_FILE,
  QCOW2_EXT_END,
  QCOW2_EXT_FEATURE_TABLE,
  QCOW2_HEADER_FIELDS,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_EXTL2,
  QCOW2_INCOMPAT_KNOWN,
  QCOW2_INCOMPAT_NAMES,
  QCOW2_MAGIC,
  QCOW2_MAX_BACKING_NAME,
  QCOW2_MAX_CLUSTER_BITS,
  QCOW2_MAX_L1_BYTES,
  QCOW2_MAX_REFTABLE_BYTES,
  QCOW2_MAX_SNAPSHOTS,
  QCOW2_MIN_CLUSTER_BITS,
  QCOW2_V2_HEADER_LENGTH,
  QCOW2_V3_HEADER_LENGTH,
  qcow2Decode,
  qcow2Encode,
  qcow2Pad8,
  type Qcow2RawHeader,
} from "./layout.js";

/** One header extension exactly as stored (type and data without padding). */
export interface Qcow2Extension {
  type: number;
  data: Uint8Array;
}

/** The bitmaps extension, decoded. */
export interface Qcow2BitmapsExtension {
  nbBitmaps: number;
  directorySize: number;
  directoryOffset: number;
}

/** A validated qcow2 header: every number is bounded and safe to use. */
export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** Virtual size in bytes. */
  size: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  backingFileOffset: number;
  backingFileSize: number;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  /** Every extension in file order, known ones included (kept for rewriting). */
  extensions: Qcow2Extension[];
  bitmaps?: Qcow2BitmapsExtension;
  /** Feature names from the feature name table: key `${type}:${bit}`. */
  featureNames: Map<string, string>;
  /** Header bytes from 105 up to header_length (unknown additional fields, kept). */
  extraHeaderBytes: Uint8Array;
}

/** Byte offsets of header fields that are patched in place. */
export const QCOW2_HDR_OFFSET = {
  incompatibleFeatures: 72,
  autoclearFeatures: 88,
  refcountTableOffset: 48,
  l1Size: 36,
  l1TableOffset: 40,
  nbSnapshots: 60,
} as const;

const decoder = new TextDecoder("utf-8", { fatal: false });

function u64(v: bigint, field: string, offset: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw qcow2Corrupt(`header field ${field} value ${v} exceeds 2^53`, "header", offset);
  }
  return Number(v);
}

/** Names an incompatible feature bit using the image's own feature table when it has one. */
function incompatName(bit: number, names: Map<string, string>): string {
  return names.get(`0:${bit}`) ?? QCOW2_INCOMPAT_NAMES[bit] ?? `unknown feature`;
}

/**
 * Reads and validates the header of `file`. Throws {@link ImageError}s with clear messages for
 * anything out of bounds. Checks tables fit in the file (`fileSize`).
 */
export async function readQcow2Header(file: IoBackend, fileSize: number): Promise<Qcow2Header> {
  if (fileSize < QCOW2_V2_HEADER_LENGTH) {
    throw qcow2Corrupt(`file of ${fileSize} bytes is shorter than the 72-byte header`, "header", 0);
  }
  const first = await readExact(file, 0, Math.min(fileSize, 4096), "header", "qcow2");
  const raw = qcow2Decode(QCOW2_HEADER_FIELDS, first, 0, QCOW2_V2_HEADER_LENGTH);
  if (raw.magic !== QCOW2_MAGIC) {
    throw qcow2Corrupt(`bad magic ${hex(raw.magic)} (expected 0x514649fb)`, "header", 0);
  }
  if (raw.version !== 2 && raw.version !== 3) {
    throw qcow2Unsupported(`qcow2 version ${raw.version} is not supported (only 2 and 3)`);
  }
  const version = raw.version as 2 | 3;
  const cb = raw.clusterBits;
  if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS) {
    throw qcow2Unsupported(`cluster size 2^${cb} is outside 512 bytes .. 2 MiB`);
  }
  const clusterSize = 2 ** cb;
  if (fileSize < clusterSize && fileSize < 4096) {
    // A header cluster shorter than the file: allowed (qemu truncates sparse images).
  }
  const headBuf = await readExact(file, 0, Math.min(fileSize, clusterSize), "header cluster", "qcow2");
  let h: Qcow2RawHeader;
  let headerLength: number;
  if (version === 2) {
    h = qcow2Decode(QCOW2_HEADER_FIELDS, headBuf, 0, QCOW2_V2_HEADER_LENGTH);
    h.refcountOrder = 4;
    headerLength = QCOW2_V2_HEADER_LENGTH;
  } else {
    if (headBuf.length < QCOW2_V3_HEADER_LENGTH) {
      throw qcow2Corrupt(`file of ${fileSize} bytes is shorter than the 104-byte version 3 header`, "header", 0);
    }
    const hl = qcow2Decode(QCOW2_HEADER_FIELDS, headBuf, 0, QCOW2_V3_HEADER_LENGTH).headerLength;
    if (hl < QCOW2_V3_HEADER_LENGTH || hl % 8 !== 0 || hl > Math.min(clusterSize, headBuf.length)) {
      throw qcow2Corrupt(`header_length ${hl} is not a multiple of 8 between 104 and the cluster size`, "header", 100);
    }
    headerLength = hl;
    h = qcow2Decode(QCOW2_HEADER_FIELDS, headBuf, 0, hl);
  }
  if (h.refcountOrder > 6) {
    throw qcow2Corrupt(`refcount_order ${h.refcountOrder} exceeds 6`, "header", 96);
  }
  if (h.cryptMethod !== 0) {
    throw qcow2Unsupported(`encrypted images are not supported (crypt_method ${h.cryptMethod})`);
  }

  // Extensions come first: the feature name table helps name unknown bits.
  const extensions: Qcow2Extension[] = [];
  const featureNames = new Map<string, string>();
  let backingFormat: string | undefined;
  let dataFile: string | undefined;
  let bitmaps: Qcow2BitmapsExtension | undefined;
  const extEnd = h.backingFileOffset > 0n && h.backingFileOffset < BigInt(headBuf.length)
    ? Number(h.backingFileOffset)
    : headBuf.length;
  let pos = headerLength;
  const seen = new Set<number>();
  while (pos + 8 <= extEnd) {
    const e = qcow2Decode(QCOW2_EXTENSION_FIELDS, headBuf, pos);
    if (e.type === QCOW2_EXT_END) break;
    const dataStart = pos + 8;
    if (e.length > extEnd - dataStart) {
      throw qcow2Corrupt(
        `header extension ${hex(e.type)} at offset ${pos} has length ${e.length}, past the end of the header area (${extEnd - dataStart} bytes left)`,
        "header extension",
        pos,
      );
    }
    const data = headBuf.slice(dataStart, dataStart + e.length);
    if (seen.has(e.type) && e.type !== 0) {
      throw qcow2Corrupt(`header extension ${hex(e.type)} appears twice`, "header extension", pos);
    }
    seen.add(e.type);
    extensions.push({ type: e.type, data });
    switch (e.type) {
      case QCOW2_EXT_BACKING_FORMAT:
        backingFormat = decoder.decode(data);
        break;
      case QCOW2_EXT_DATA_FILE:
        dataFile = decoder.decode(data);
        break;
      case QCOW2_EXT_FEATURE_TABLE:
        for (let i = 0; i + 48 <= data.length; i += 48) {
          const nameBytes = data.subarray(i + 2, i + 48);
          const nul = nameBytes.indexOf(0);
          featureNames.set(`${data[i]}:${data[i + 1]}`, decoder.decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)));
        }
        break;
      case QCOW2_EXT_BITMAPS: {
        if (data.length < QCOW2_BITMAPS_EXT_SIZE) {
          throw qcow2Corrupt(`bitmaps extension of ${data.length} bytes is shorter than 24`, "bitmaps extension", pos);
        }
        const b = qcow2Decode(QCOW2_BITMAPS_EXT_FIELDS, data);
        bitmaps = {
          nbBitmaps: b.nbBitmaps,
          directorySize: u64(b.directorySize, "bitmap_directory_size", dataStart + 8),
          directoryOffset: u64(b.directoryOffset, "bitmap_directory_offset", dataStart + 16),
        };
        break;
      }
    }
    pos = dataStart + qcow2Pad8(e.length);
  }

  const unknown = h.incompatibleFeatures & ~QCOW2_INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    let bit = 0;
    while (((unknown >> BigInt(bit)) & 1n) === 0n) bit++;
    throw qcow2Unsupported(`incompatible feature bit ${bit} (${incompatName(bit, featureNames)}) is not supported`);
  }

  const size = u64(h.size, "size", 24);
  const l1TableOffset = u64(h.l1TableOffset, "l1_table_offset", 40);
  const refcountTableOffset = u64(h.refcountTableOffset, "refcount_table_offset", 48);
  const snapshotsOffset = u64(h.snapshotsOffset, "snapshots_offset", 64);
  const backingFileOffset = u64(h.backingFileOffset, "backing_file_offset", 8);
  const extL2 = (h.incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) !== 0n;
  if (extL2 && cb < 14) {
    throw qcow2Corrupt(`extended L2 entries need clusters of at least 16 KiB, not ${formatBytes(clusterSize)}`, "header", 20);
  }

  // Compression type
  let compressionType = QCOW2_COMPRESSION_ZLIB;
  if (version === 3 && headerLength > 104) compressionType = h.compressionType;
  const compBit = (h.incompatibleFeatures & QCOW2_INCOMPAT_COMPRESSION) !== 0n;
  if (compBit && compressionType === QCOW2_COMPRESSION_ZLIB) {
    throw qcow2Corrupt("the compression type bit is set but compression_type is zlib or absent", "header", 104);
  }
  if (!compBit && compressionType !== QCOW2_COMPRESSION_ZLIB) {
    throw qcow2Corrupt(`compression_type ${compressionType} needs the compression type bit`, "header", 104);
  }
  if (compressionType !== QCOW2_COMPRESSION_ZLIB && compressionType !== QCOW2_COMPRESSION_ZSTD) {
    throw qcow2Unsupported(`compression type ${compressionType} is not supported (zlib and zstd are)`);
  }

  // L1 table
  const l2Entries = clusterSize / (extL2 ? 16 : 8);
  if (h.l1Size * 8 > QCOW2_MAX_L1_BYTES) {
    throw qcow2Limit(`L1 table of ${formatBytes(h.l1Size * 8)} exceeds the limit of 32 MiB`, "header", 36);
  }
  const minL1 = Math.ceil(size / clusterSize / l2Entries);
  if (h.l1Size < minL1) {
    throw qcow2Corrupt(`L1 table of ${h.l1Size} entries is too small for a virtual size of ${size} bytes (needs ${minL1})`, "header", 36);
  }
  if (h.l1Size > 0) checkTable("L1 table", l1TableOffset, h.l1Size * 8, clusterSize, fileSize, 40);

  // Refcount table
  const rtBytes = h.refcountTableClusters * clusterSize;
  if (rtBytes > QCOW2_MAX_REFTABLE_BYTES) {
    throw qcow2Limit(`refcount table of ${formatBytes(rtBytes)} exceeds the limit of 8 MiB`, "header", 56);
  }
  if (h.refcountTableClusters === 0) {
    throw qcow2Corrupt("the refcount table has 0 clusters", "header", 56);
  }
  checkTable("refcount table", refcountTableOffset, rtBytes, clusterSize, fileSize, 48);

  // Snapshots
  if (h.nbSnapshots > QCOW2_MAX_SNAPSHOTS) {
    throw qcow2Limit(`${h.nbSnapshots} snapshots exceed the limit of ${QCOW2_MAX_SNAPSHOTS}`, "header", 60);
  }
  if (h.nbSnapshots > 0) checkTable("snapshot table", snapshotsOffset, 1, clusterSize, fileSize, 64);

  // Backing file name
  let backingFile: string | undefined;
  if (backingFileOffset !== 0) {
    // The name must lie in the header cluster, as qemu requires (same wording as qemu-img).
    if (backingFileOffset > clusterSize) {
      const why = `${backingFileOffset}, past the header cluster of ${clusterSize} bytes`;
      throw qcow2Corrupt(`Invalid backing file offset (${why})`, "header", 8);
    }
    if (h.backingFileSize > QCOW2_MAX_BACKING_NAME) {
      throw qcow2Corrupt(`Backing file name too long (${h.backingFileSize} bytes, the limit is 1023)`, "header", 16);
    }
    if (backingFileOffset + h.backingFileSize > clusterSize) {
      const end = backingFileOffset + h.backingFileSize;
      const why = `it ends at ${end}, past the header cluster of ${clusterSize} bytes`;
      throw qcow2Corrupt(`Backing file name too long (${why})`, "header", 16);
    }
    if (backingFileOffset + h.backingFileSize > fileSize) {
      throw qcow2Corrupt(`backing file name at ${backingFileOffset} ends past the end of the file`, "header", 8);
    }
    const nameBytes = await readExact(file, backingFileOffset, h.backingFileSize, "backing file name", "qcow2");
    backingFile = decoder.decode(nameBytes);
  }

  const extraStart = 105;
  const extraHeaderBytes = headerLength > extraStart ? headBuf.slice(extraStart, headerLength) : new Uint8Array(0);

  return {
    version,
    clusterBits: cb,
    clusterSize,
    size,
    l1Size: h.l1Size,
    l1TableOffset,
    refcountTableOffset,
    refcountTableClusters: h.refcountTableClusters,
    nbSnapshots: h.nbSnapshots,
    snapshotsOffset,
    incompatibleFeatures: h.incompatibleFeatures,
    compatibleFeatures: h.compatibleFeatures,
    autoclearFeatures: h.autoclearFeatures,
    refcountOrder: h.refcountOrder,
    headerLength,
    compressionType,
    backingFileOffset,
    backingFileSize: backingFileOffset ? h.backingFileSize : 0,
    backingFile,
    backingFormat,
    dataFile,
    extensions,
    bitmaps,
    featureNames,
    extraHeaderBytes,
  };
}

function checkTable(what: string, offset: number, bytes: number, clusterSize: number, fileSize: number, field: number): void {
  if (offset % clusterSize !== 0) {
    throw qcow2Corrupt(`${what} offset ${hex(offset)} is not aligned to the cluster size ${clusterSize}`, "header", field);
  }
  if (offset === 0) {
    throw qcow2Corrupt(`${what} offset is 0 (it would overlap the header)`, "header", field);
  }
  if (offset + bytes > fileSize) {
    throw qcow2Corrupt(`${what} at ${hex(offset)} (${formatBytes(bytes)}) ends past the end of the file (${formatBytes(fileSize)})`, "header", field);
  }
}

/**
 * Encodes the first cluster: the header fields, `extensions` in order followed by the end
 * marker, and the backing file name after them. Updates `backingFileOffset`/`backingFileSize`
 * and (v3) `headerLength` of `h`. Throws `RangeError` when it does not fit one cluster.
 */
export function encodeQcow2HeaderCluster(h: Qcow2Header): Uint8Array {
  const buf = new Uint8Array(h.clusterSize);
  const headerLength = h.version === 2 ? QCOW2_V2_HEADER_LENGTH : h.headerLength;
  let pos = headerLength;
  for (const e of h.extensions) {
    if (pos + 8 + qcow2Pad8(e.data.length) > buf.length) throw new RangeError("qcow2 header extensions do not fit in one cluster");
    const v = new DataView(buf.buffer, pos, 8);
    v.setUint32(0, e.type);
    v.setUint32(4, e.data.length);
    buf.set(e.data, pos + 8);
    pos += 8 + qcow2Pad8(e.data.length);
  }
  pos += 8; // end-of-extensions marker (zeros)
  const name = h.backingFile !== undefined ? new TextEncoder().encode(h.backingFile) : undefined;
  if (name) {
    if (name.length > QCOW2_MAX_BACKING_NAME) throw new RangeError(`Backing file name of ${name.length} bytes exceeds 1023`);
    if (pos + name.length > buf.length) throw new RangeError("qcow2 backing file name does not fit in the header cluster");
    buf.set(name, pos);
    h.backingFileOffset = pos;
    h.backingFileSize = name.length;
  } else {
    h.backingFileOffset = 0;
    h.backingFileSize = 0;
  }
  const raw: Qcow2RawHeader = {
    magic: QCOW2_MAGIC,
    version: h.version,
    backingFileOffset: BigInt(h.backingFileOffset),
    backingFileSize: h.backingFileSize,
    clusterBits: h.clusterBits,
    size: BigInt(h.size),
    cryptMethod: 0,
    l1Size: h.l1Size,
    l1TableOffset: BigInt(h.l1TableOffset),
    refcountTableOffset: BigInt(h.refcountTableOffset),
    refcountTableClusters: h.refcountTableClusters,
    nbSnapshots: h.nbSnapshots,
    snapshotsOffset: BigInt(h.snapshotsOffset),
    incompatibleFeatures: h.incompatibleFeatures,
    compatibleFeatures: h.compatibleFeatures,
    autoclearFeatures: h.autoclearFeatures,
    refcountOrder: h.refcountOrder,
    headerLength,
    compressionType: h.compressionType,
  };
  qcow2Encode(QCOW2_HEADER_FIELDS, raw, buf, 0, headerLength);
  if (h.version === 3 && h.extraHeaderBytes.length > 0) buf.set(h.extraHeaderBytes.subarray(0, headerLength - 105), 105);
  return buf;
}

/** Encodes a u64 feature bitmask as 8 big-endian bytes (for in-place header patches). */
export function qcow2U64Bytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}
