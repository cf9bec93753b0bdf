/**
 * Apple disk images (UDIF, `.dmg`) as QEMU's read-only driver reads them: a 512-byte `koly`
 * trailer at the end of the file points at an XML property list whose `blkx` entries are base64
 * `mish` tables; each table lists chunks of the disk — zero-filled, raw, ignored, or compressed
 * (zlib, bzip2, lzfse). All integers are big-endian.
 * ```
 * [ data fork: chunk data ... ][ XML plist ][ koly trailer (512 bytes, last in the file) ]
 * mish: header (204 bytes) + chunk × n (40 bytes each)
 * chunk: type, sector range (relative to the table's first sector), compressed range (relative
 *        to the data fork)
 * ```
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

export const DMG_SECTOR = 512;
export const DMG_KOLY_MAGIC = 0x6b6f6c79; // "koly"
export const DMG_MISH_MAGIC = 0x6d697368; // "mish"
export const DMG_KOLY_SIZE = 512;

/** Chunk types. */
export const DmgChunkType = {
  zero: 0x00000000,
  raw: 0x00000001,
  ignore: 0x00000002,
  adc: 0x80000004,
  zlib: 0x80000005,
  bzip2: 0x80000006,
  lzfse: 0x80000007,
  comment: 0x7ffffffe,
  end: 0xffffffff,
} as const;

/** Largest chunk QEMU accepts, decoded and compressed (bytes). */
export const DMG_MAX_CHUNK_BYTES = 64 << 20;
/** Largest property list vdisk reads (bytes); real ones are kilobytes. */
export const DMG_MAX_PLIST_BYTES = 64 << 20;

/** The trailer (fields vdisk reads; the rest kept as reserved bytes). */
export const DmgKolyCodec = defineStruct("dmg koly trailer", "be", [
  { name: "magic", kind: "u32", at: 0 },
  { name: "version", kind: "u32", at: 4 },
  { name: "headerSize", kind: "u32", at: 8 },
  { name: "flags", kind: "u32", at: 12 },
  { name: "runningDataForkOffset", kind: "u64", at: 16 },
  { name: "dataForkOffset", kind: "u64", at: 24 },
  { name: "dataForkLength", kind: "u64", at: 32 },
  { name: "rsrcForkOffset", kind: "u64", at: 40 },
  { name: "rsrcForkLength", kind: "u64", at: 48 },
  { name: "segments", kind: "bytes", length: 160, at: 56 },
  { name: "plistOffset", kind: "u64", at: 0xd8 },
  { name: "plistLength", kind: "u64", at: 0xe0 },
  { name: "reserved", kind: "bytes", length: 256, at: 0xe8 },
  { name: "imageVariant", kind: "u32", at: 0x1e8 },
  { name: "sectorCount", kind: "u64", at: 0x1ec },
  { name: "tail", kind: "bytes", length: 12, at: 0x1f4 },
], DMG_KOLY_SIZE);

/** The header of a `mish` table. */
export const DmgMishCodec = defineStruct("dmg mish table", "be", [
  { name: "magic", kind: "u32", at: 0 },
  { name: "version", kind: "u32", at: 4 },
  { name: "firstSector", kind: "u64", at: 8 },
  { name: "sectorCount", kind: "u64", at: 16 },
  { name: "dataStart", kind: "u64", at: 24 },
  { name: "buffersNeeded", kind: "u32", at: 32 },
  { name: "blockDescriptors", kind: "u32", at: 36 },
  { name: "reserved", kind: "bytes", length: 160, at: 40 },
  { name: "chunkCount", kind: "u32", at: 200 },
]);

/** One chunk entry of a `mish` table. */
export const DmgChunkCodec = defineStruct("dmg chunk", "be", [
  { name: "type", kind: "u32", at: 0 },
  { name: "comment", kind: "u32", at: 4 },
  { name: "sector", kind: "u64", at: 8 },
  { name: "sectorCount", kind: "u64", at: 16 },
  { name: "compressedOffset", kind: "u64", at: 24 },
  { name: "compressedLength", kind: "u64", at: 32 },
]);
