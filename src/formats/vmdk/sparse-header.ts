/**
 * Reading and validating the header of a hosted sparse extent ("KDMV"), including the footer
 * of streams written with the grain directory at the end, in QEMU's order of checks and with
 * its messages (iotests 059).
 * @module
 */
import { FieldOverflowError } from "../../codec/struct.js";
import { CorruptImageError, ImageError, LimitExceededError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import {
  VMDK_COMPRESSION_DEFLATE,
  VMDK_COWD_MAGIC,
  VMDK_FLAG_MARKERS,
  VMDK_FLAG_RGD,
  VMDK_FLAG_ZERO_GRAIN,
  VMDK_FOOTER_FROM_END,
  VMDK_GD_AT_END,
  VMDK_MAX_COMPRESSED_GRAIN,
  VMDK_MAX_GD_ENTRIES,
  VMDK_MAX_GRAIN_SECTORS,
  VMDK_MAX_GTES_PER_GT,
  VMDK_SECTOR_SIZE,
  VMDK_SPARSE_MAGIC,
  VmdkMarkerCodec,
  VmdkMarkerType,
  VmdkSparseHeaderCodec,
  type VmdkSparseHeader,
} from "./layout.js";

/** The validated geometry of one sparse extent, in bytes unless named otherwise. */
export interface VmdkSparseGeometry {
  /** The header in effect (the footer's copy for GD_AT_END streams). */
  readonly header: VmdkSparseHeader;
  /** Extent size in bytes. */
  readonly capacity: number;
  readonly grainSize: number;
  readonly gtesPerGt: number;
  /** Number of grain directory entries. */
  readonly gdEntries: number;
  readonly gdOffset: number;
  /** 0 when there is no redundant directory. */
  readonly rgdOffset: number;
  /** First byte after the metadata (`overhead` sectors). */
  readonly grainOffset: number;
  readonly compressed: boolean;
  readonly markers: boolean;
  readonly zeroGrain: boolean;
  /** True when the lead header says GD_AT_END and the footer was used. */
  readonly gdAtEnd: boolean;
}

function fail(message: string, structure: string, fileOffset?: number): CorruptImageError {
  return new CorruptImageError(`Cannot open vmdk image: ${message}`, { format: "vmdk", structure, fileOffset });
}

/**
 * A u64 field of the sparse header in `buf` (which holds the header sector from its start) as
 * a number, or Infinity when it is 2^53 or more: for checks that must run before decoding.
 */
export function vmdkHeaderU64(buf: Uint8Array, field: Parameters<typeof VmdkSparseHeaderCodec.offsetOf>[0]): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const o = VmdkSparseHeaderCodec.offsetOf(field);
  const hi = dv.getUint32(o + 4, true);
  return hi > 0x1fffff ? Infinity : hi * 2 ** 32 + dv.getUint32(o, true);
}

/** Decodes a header sector whose magic was checked; u64 fields past 2^53 become errors. */
function decodeHeader(buf: Uint8Array, at: number, fileOffset: number): VmdkSparseHeader {
  try {
    return VmdkSparseHeaderCodec.decode(buf, at);
  } catch (e) {
    if (e instanceof RangeError || e instanceof FieldOverflowError) throw fail(e.message, "header", fileOffset);
    throw e;
  }
}

function magicAt(buf: Uint8Array, at: number): string {
  return String.fromCharCode(buf[at], buf[at + 1], buf[at + 2], buf[at + 3]);
}

/**
 * Reads the footer of a GD_AT_END stream: footer marker, header copy, end-of-stream marker in
 * the last 1536 bytes of the (sector-rounded) file.
 */
async function readFooter(file: IoBackend, fileSize: number): Promise<{ raw: Uint8Array; at: number }> {
  const end = fileSize - (fileSize % VMDK_SECTOR_SIZE);
  const at = end - VMDK_FOOTER_FROM_END;
  if (at < VMDK_SECTOR_SIZE) throw fail("Invalid footer (the file is too short for one)", "footer", Math.max(0, at));
  const buf = await readExact(file, at, VMDK_FOOTER_FROM_END, "footer", "vmdk");
  let marker: ReturnType<typeof VmdkMarkerCodec.decode>;
  let eos: ReturnType<typeof VmdkMarkerCodec.decode>;
  try {
    marker = VmdkMarkerCodec.decode(buf, 0);
    eos = VmdkMarkerCodec.decode(buf, 2 * VMDK_SECTOR_SIZE);
  } catch {
    throw fail("Invalid footer (a marker value exceeds 2^53)", "footer", at);
  }
  if (
    marker.size !== 0 || marker.type !== VmdkMarkerType.footer || magicAt(buf, VMDK_SECTOR_SIZE) !== VMDK_SPARSE_MAGIC ||
    eos.value !== 0 || eos.size !== 0 || eos.type !== VmdkMarkerType.endOfStream
  ) {
    throw fail("Invalid footer", "footer", at);
  }
  return { raw: buf, at: at + VMDK_SECTOR_SIZE };
}

/** Options of {@link readVmdkSparseHeader}. */
export interface ReadSparseHeaderOptions {
  /** The extent is opened for writing (version 3 without compression must be read-only). */
  writable: boolean;
}

/**
 * Reads and validates the sparse header of `file`. The checks run in QEMU's order: magic,
 * footer, version, grain table size, entry size, truncation, granularity, directory size. Throws
 * {@link ImageError}s whose messages contain QEMU's wording.
 */
export async function readVmdkSparseHeader(
  file: IoBackend,
  fileSize: number,
  options: ReadSparseHeaderOptions,
): Promise<VmdkSparseGeometry> {
  if (fileSize < VMDK_SECTOR_SIZE) throw fail(`File is too small (${fileSize} bytes) for a sparse header`, "header", 0);
  const lead = await readExact(file, 0, VMDK_SECTOR_SIZE, "header", "vmdk");
  const magic = magicAt(lead, 0);
  if (magic === VMDK_COWD_MAGIC) {
    throw new UnsupportedFeatureError("Cannot open vmdk image: vmfsSparse (COWD) extents are not supported", {
      format: "vmdk",
      structure: "header",
    });
  }
  if (magic !== VMDK_SPARSE_MAGIC) {
    throw new ImageError("ERR_NOT_AN_IMAGE", `Cannot open vmdk image: Image not in VMDK format (magic '${magic}')`, {
      format: "vmdk",
      structure: "header",
      fileOffset: 0,
    });
  }
  const gdField = VmdkSparseHeaderCodec.offsetOf("gdOffset");
  const gdAtEnd = lead.subarray(gdField, gdField + 8).every((b) => b === 0xff);
  let raw = lead;
  let headerAt = 0;
  if (gdAtEnd) {
    const f = await readFooter(file, fileSize);
    raw = f.raw.subarray(VMDK_SECTOR_SIZE, 2 * VMDK_SECTOR_SIZE);
    headerAt = f.at;
  }
  const compressed = new DataView(raw.buffer, raw.byteOffset).getUint16(
    VmdkSparseHeaderCodec.offsetOf("compressAlgorithm"), true,
  ) === VMDK_COMPRESSION_DEFLATE;
  const dv = new DataView(raw.buffer, raw.byteOffset, VMDK_SECTOR_SIZE);
  const version = dv.getUint32(VmdkSparseHeaderCodec.offsetOf("version"), true);
  if (version > 3) {
    throw new UnsupportedFeatureError(`Cannot open vmdk image: Unsupported VMDK version ${version}`, {
      format: "vmdk",
      structure: "header",
      fileOffset: headerAt,
    });
  }
  if (version === 3 && options.writable && !compressed) {
    // Version 3 adds changed-block tracking that vdisk would not keep up to date.
    throw new ImageError("ERR_READ_ONLY", "Cannot open vmdk image: VMDK version 3 must be read only (open it read-only)", {
      format: "vmdk",
      structure: "header",
    });
  }
  const gtes = dv.getUint32(VmdkSparseHeaderCodec.offsetOf("numGtesPerGt"), true);
  if (gtes > VMDK_MAX_GTES_PER_GT) {
    throw fail(`L2 table size too big (${gtes} entries per grain table, the limit is ${VMDK_MAX_GTES_PER_GT})`, "header", headerAt);
  }
  const granularity = vmdkHeaderU64(raw, "granularity");
  if (gtes === 0 || granularity === 0) {
    throw fail(`L1 entry size is invalid (${gtes} entries per grain table of ${granularity}-sector grains)`, "header", headerAt);
  }
  const overhead = vmdkHeaderU64(raw, "overhead");
  if (Math.floor(fileSize / VMDK_SECTOR_SIZE) < overhead) {
    const need = overhead * VMDK_SECTOR_SIZE;
    throw fail(`File truncated, expecting at least ${Number.isFinite(need) ? need : "2^53"} bytes (the file has ${fileSize})`, "header", headerAt);
  }
  if (granularity > VMDK_MAX_GRAIN_SECTORS) {
    throw fail(`Invalid granularity, image may be corrupt (${granularity} sectors per grain)`, "header", headerAt);
  }
  const capacitySectors = vmdkHeaderU64(raw, "capacity");
  const gdEntries = Math.ceil(capacitySectors / (gtes * granularity));
  if (!(gdEntries <= VMDK_MAX_GD_ENTRIES)) {
    throw new LimitExceededError(
      `Cannot open vmdk image: L1 size too big (a grain directory of ${Number.isFinite(gdEntries) ? gdEntries : "over 2^53"} entries exceeds the limit of ${VMDK_MAX_GD_ENTRIES})`,
      { format: "vmdk", structure: "grain directory", fileOffset: headerAt },
    );
  }
  const header = decodeHeader(raw, 0, headerAt);
  const grainSize = granularity * VMDK_SECTOR_SIZE;
  if (compressed && grainSize > VMDK_MAX_COMPRESSED_GRAIN) {
    throw new UnsupportedFeatureError(
      `Cannot open vmdk image: compressed grains of ${grainSize} bytes exceed the limit of ${VMDK_MAX_COMPRESSED_GRAIN}`,
      { format: "vmdk", structure: "header" },
    );
  }
  if (header.gdOffset === VMDK_GD_AT_END) throw fail("the footer's grain directory offset is GD_AT_END too", "footer", headerAt);
  const gdOffset = header.gdOffset * VMDK_SECTOR_SIZE;
  const rgdOffset = header.flags & VMDK_FLAG_RGD ? header.rgdOffset * VMDK_SECTOR_SIZE : 0;
  for (const [name, off] of [["grain directory", gdOffset], ["redundant grain directory", rgdOffset]] as const) {
    if (!Number.isSafeInteger(off)) throw fail(`${name} offset ${off} is out of range`, "header", headerAt);
  }
  return {
    header,
    capacity: capacitySectors * VMDK_SECTOR_SIZE,
    grainSize,
    gtesPerGt: gtes,
    gdEntries,
    gdOffset,
    rgdOffset,
    grainOffset: overhead * VMDK_SECTOR_SIZE,
    compressed,
    markers: (header.flags & VMDK_FLAG_MARKERS) !== 0,
    zeroGrain: (header.flags & VMDK_FLAG_ZERO_GRAIN) !== 0,
    gdAtEnd,
  };
}
