/**
 * On-disk layout of VHDX, after Microsoft's "VHDX Format Specification" v1.00 (25 August 2012;
 * also published as [MS-VHDX]). All integers are little-endian on disk. GUIDs use Microsoft's
 * mixed-endian order (see `guid.ts`).
 *
 * ```
 *  0        64K       128K      192K      256K      320K             1M
 *  +--------+---------+---------+---------+---------+---- ... --------+
 *  | File   | Header1 | Header2 | Region  | Region  |   (reserved)    |   header section (1 MiB)
 *  | ident. | 4K used | 4K used | table 1 | table 2 |                 |
 *  +--------+---------+---------+---------+---------+---- ... --------+
 *  then, anywhere at 1 MiB-aligned offsets, as the current header and region table say:
 *  | Log (LogOffset, LogLength) | BAT region | Metadata region | payload and sector bitmap blocks |
 * ```
 *
 * - Headers: two copies with CRC-32C and a sequence number; the valid one with the higher
 *   number is current. Updates go to the non-current copy (they cannot go through the log,
 *   because the header locates the log).
 * - Region table (two identical 64 KiB copies): where the BAT and the metadata region are.
 * - Metadata region: a 64 KiB table of items (file parameters, virtual disk size, page 83 data,
 *   logical/physical sector size, parent locator), items at offsets ≥ 64 KiB inside the region.
 * - BAT: one u64 per payload block, and after every `chunkRatio` payload entries one entry for
 *   the sector bitmap block of that chunk. Entry = state (bits 0–2) | FileOffsetMB (bits 20–63).
 *   chunkRatio = 2^23 × LogicalSectorSize / BlockSize.
 * - Log: a circular buffer of 4 KiB sectors holding entries (header, descriptors, data sectors)
 *   that redo metadata writes; replayed on open when the header names a log GUID.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** 1 MiB: the alignment of every region, block and the unit of BAT file offsets. */
export const VHDX_MIB = 1 << 20;

// ---- Fixed offsets of the header section ----
export const VHDX_FILE_ID_OFFSET = 0;
export const VHDX_HEADER1_OFFSET = 64 * 1024;
export const VHDX_HEADER2_OFFSET = 128 * 1024;
export const VHDX_REGION_TABLE1_OFFSET = 192 * 1024;
export const VHDX_REGION_TABLE2_OFFSET = 256 * 1024;
/** The header section spans the first 1 MiB; nothing else may live there. */
export const VHDX_HEADER_SECTION_SIZE = VHDX_MIB;

/** Bytes covered by a header's checksum (the structure plus reserved space). */
export const VHDX_HEADER_SIZE = 4096;
/** Size of a region table copy (the checksum covers all of it). */
export const VHDX_REGION_TABLE_SIZE = 64 * 1024;
/** Size of the metadata table at the start of the metadata region. */
export const VHDX_METADATA_TABLE_SIZE = 64 * 1024;
/** Log sector size: entries, descriptors and data sectors are built from these. */
export const VHDX_LOG_SECTOR_SIZE = 4096;
/** Sector bitmap blocks are always 1 MiB. */
export const VHDX_SECTOR_BITMAP_BLOCK_SIZE = VHDX_MIB;
/** Sectors described by one sector bitmap block (2^23). */
export const VHDX_SECTORS_PER_BITMAP_BLOCK = 1 << 23;

// ---- Limits of the specification ----
export const VHDX_MAX_REGION_ENTRIES = 2047;
export const VHDX_MAX_METADATA_ENTRIES = 2047;
/** Largest metadata item (spec: 1 MiB). */
export const VHDX_MAX_METADATA_ITEM = VHDX_MIB;
export const VHDX_MIN_BLOCK_SIZE = VHDX_MIB;
export const VHDX_MAX_BLOCK_SIZE = 256 * VHDX_MIB;
/** 64 TiB: the largest virtual size of the specification. */
export const VHDX_MAX_VIRTUAL_SIZE = 64 * 2 ** 40;
/** Log length is a u32 count of bytes, a multiple of 1 MiB. */
export const VHDX_MAX_LOG_LENGTH = 4 * 2 ** 30 - VHDX_MIB;
/** Largest parent locator key/value list vdisk accepts (keys are few; 256 is generous). */
export const VHDX_MAX_LOCATOR_ENTRIES = 256;

// ---- Signatures (ASCII on disk) ----
export const VHDX_FILE_SIGNATURE = "vhdxfile";
export const VHDX_HEADER_SIGNATURE = "head";
export const VHDX_REGION_SIGNATURE = "regi";
export const VHDX_METADATA_SIGNATURE = "metadata";
export const VHDX_LOG_SIGNATURE = "loge";
export const VHDX_LOG_DATA_DESC_SIGNATURE = "desc";
export const VHDX_LOG_ZERO_DESC_SIGNATURE = "zero";
export const VHDX_LOG_DATA_SECTOR_SIGNATURE = "data";

// ---- Region GUIDs ----
export const VHDX_BAT_REGION_GUID = "2dc27766-f623-4200-9d64-115e9bfd4a08";
export const VHDX_METADATA_REGION_GUID = "8b7ca206-4790-4b9a-b8fe-575f050f886e";

// ---- Metadata item GUIDs ----
export const VHDX_FILE_PARAMETERS_GUID = "caa16737-fa36-4d43-b3b6-33f0aa44e76b";
export const VHDX_VIRTUAL_DISK_SIZE_GUID = "2fa54224-cd1b-4876-b211-5dbed83bf4b8";
export const VHDX_PAGE83_GUID = "beca12ab-b2e6-4523-93ef-c309e000c746";
export const VHDX_LOGICAL_SECTOR_SIZE_GUID = "8141bf1d-a96f-4709-ba47-f233a8faab5f";
export const VHDX_PHYSICAL_SECTOR_SIZE_GUID = "cda348c7-445d-4471-9cc9-e9885251c556";
export const VHDX_PARENT_LOCATOR_GUID = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c";
/** Locator type of a VHDX parent (the only type the specification defines). */
export const VHDX_PARENT_LOCATOR_TYPE_VHDX = "b04aefb7-d19e-4a81-b789-25b8e9445913";

// ---- Flags ----
/** Region table entry flags bit 0: the region must be understood to open the file. */
export const VHDX_REGION_REQUIRED = 1;
/** Metadata entry flags. */
export const VHDX_META_IS_USER = 1;
export const VHDX_META_IS_VIRTUAL_DISK = 2;
export const VHDX_META_IS_REQUIRED = 4;
/** File parameters flags. */
export const VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED = 1;
export const VHDX_PARAMS_HAS_PARENT = 2;

// ---- BAT entry states (bits 0–2) ----
/** Not in this file: zeros (vdisk, qemu), or the parent's data in a differencing image. */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
/** Contents undefined by the specification; vdisk reads zeros. */
export const PAYLOAD_BLOCK_UNDEFINED = 1;
/** Reads as zeros (also in differencing images); FileOffsetMB must be 0. */
export const PAYLOAD_BLOCK_ZERO = 2;
/** Released by an unmap; contents undefined, vdisk reads zeros. */
export const PAYLOAD_BLOCK_UNMAPPED = 3;
/** The value UNMAPPED had in draft 0.95 of the specification; some writers still use it. */
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 5;
/** Stored in this file at FileOffsetMB. */
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
/** Differencing only: sectors whose sector bitmap bit is set are here, the rest in the parent. */
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
/** Sector bitmap entry: no bitmap block (every bit clear). */
export const SB_BLOCK_NOT_PRESENT = 0;
/** Sector bitmap entry: the 1 MiB bitmap block is at FileOffsetMB. */
export const SB_BLOCK_PRESENT = 6;
/** Bits 0–2 of a BAT entry. */
export const VHDX_BAT_STATE_MASK = 7;

/** Names of payload states for messages and `map`. */
export const VHDX_PAYLOAD_STATE_NAMES: Readonly<Record<number, string>> = {
  0: "NOT_PRESENT",
  1: "UNDEFINED",
  2: "ZERO",
  3: "UNMAPPED",
  5: "UNMAPPED(v0.95)",
  6: "FULLY_PRESENT",
  7: "PARTIALLY_PRESENT",
};

// ---- Structures (field lists drive decode and encode; `at` is the spec's offset) ----
// GUIDs are `bytes` of 16 (see guid.ts); sequence numbers are `bytes` of 8 read as bigint,
// because they are compared but never used as offsets and may exceed 2^53.

/** File type identifier at offset 0: signature, then a UTF-16 creator string. */
export const VhdxFileIdentifier = defineStruct("file identifier", "le", [
  { name: "signature", kind: "ascii", length: 8, at: 0 },
  { name: "creator", kind: "bytes", length: 512, at: 8 },
]);
/** Decoded {@link VhdxFileIdentifier}. */
export type VhdxFileIdentifier = ReturnType<typeof VhdxFileIdentifier.decode>;

/**
 * Header (at 64 KiB and 128 KiB). The checksum covers {@link VHDX_HEADER_SIZE} bytes with the
 * checksum field taken as zero; the reserved rest is preserved on update.
 */
export const VhdxHeader = defineStruct("header", "le", [
  { name: "signature", kind: "ascii", length: 4, at: 0 },
  { name: "checksum", kind: "u32", at: 4 },
  { name: "sequenceNumber", kind: "bytes", length: 8, at: 8 },
  { name: "fileWriteGuid", kind: "bytes", length: 16, at: 16 },
  { name: "dataWriteGuid", kind: "bytes", length: 16, at: 32 },
  { name: "logGuid", kind: "bytes", length: 16, at: 48 },
  { name: "logVersion", kind: "u16", at: 64 },
  { name: "version", kind: "u16", at: 66 },
  { name: "logLength", kind: "u32", at: 68 },
  { name: "logOffset", kind: "u64", at: 72 },
]);
/** Decoded {@link VhdxHeader} (raw fields; see headers.ts for the checked view). */
export type VhdxHeaderFields = ReturnType<typeof VhdxHeader.decode>;

/** Region table header; the checksum covers the whole 64 KiB table. */
export const VhdxRegionTableHeader = defineStruct("region table", "le", [
  { name: "signature", kind: "ascii", length: 4, at: 0 },
  { name: "checksum", kind: "u32", at: 4 },
  { name: "entryCount", kind: "u32", at: 8 },
  { name: "reserved", kind: "u32", at: 12 },
]);

/** Region table entry: offset and length are multiples of 1 MiB; flags bit 0 = required. */
export const VhdxRegionTableEntry = defineStruct("region table entry", "le", [
  { name: "guid", kind: "bytes", length: 16, at: 0 },
  { name: "fileOffset", kind: "u64", at: 16 },
  { name: "length", kind: "u32", at: 24 },
  { name: "flags", kind: "u32", at: 28 },
]);

/** Metadata table header (the first 32 bytes of the metadata region). */
export const VhdxMetadataTableHeader = defineStruct("metadata table", "le", [
  { name: "signature", kind: "ascii", length: 8, at: 0 },
  { name: "reserved", kind: "u16", at: 8 },
  { name: "entryCount", kind: "u16", at: 10 },
  { name: "reserved2", kind: "bytes", length: 20, at: 12 },
]);

/** Metadata table entry: the item offset is relative to the metadata region. */
export const VhdxMetadataTableEntry = defineStruct("metadata table entry", "le", [
  { name: "itemId", kind: "bytes", length: 16, at: 0 },
  { name: "offset", kind: "u32", at: 16 },
  { name: "length", kind: "u32", at: 20 },
  { name: "flags", kind: "u32", at: 24 },
  { name: "reserved", kind: "u32", at: 28 },
]);

/** File parameters item: block size (1–256 MiB, a power of two) and flags. */
export const VhdxFileParameters = defineStruct("file parameters", "le", [
  { name: "blockSize", kind: "u32", at: 0 },
  { name: "flags", kind: "u32", at: 4 },
]);

/** Virtual disk size item (bytes; a multiple of the logical sector size). */
export const VhdxVirtualDiskSize = defineStruct("virtual disk size", "le", [{ name: "size", kind: "u64", at: 0 }]);

/** Page 83 data item: the SCSI identity GUID of the disk. */
export const VhdxPage83Data = defineStruct("page 83 data", "le", [{ name: "guid", kind: "bytes", length: 16, at: 0 }]);

/** Logical or physical sector size item (512 or 4096). */
export const VhdxSectorSize = defineStruct("sector size", "le", [{ name: "size", kind: "u32", at: 0 }]);

/** Parent locator item header; `keyValueCount` entries follow it. */
export const VhdxParentLocatorHeader = defineStruct("parent locator", "le", [
  { name: "locatorType", kind: "bytes", length: 16, at: 0 },
  { name: "reserved", kind: "u16", at: 16 },
  { name: "keyValueCount", kind: "u16", at: 18 },
]);

/** Parent locator entry: offsets are relative to the locator item; keys and values are UTF-16LE. */
export const VhdxParentLocatorEntry = defineStruct("parent locator entry", "le", [
  { name: "keyOffset", kind: "u32", at: 0 },
  { name: "valueOffset", kind: "u32", at: 4 },
  { name: "keyLength", kind: "u16", at: 8 },
  { name: "valueLength", kind: "u16", at: 10 },
]);

/**
 * Log entry header (the first 64 bytes of an entry). `tail` is the log offset of the oldest
 * entry still needed; the checksum covers `entryLength` bytes with the field zeroed.
 */
export const VhdxLogEntryHeader = defineStruct("log entry", "le", [
  { name: "signature", kind: "ascii", length: 4, at: 0 },
  { name: "checksum", kind: "u32", at: 4 },
  { name: "entryLength", kind: "u32", at: 8 },
  { name: "tail", kind: "u32", at: 12 },
  { name: "sequenceNumber", kind: "bytes", length: 8, at: 16 },
  { name: "descriptorCount", kind: "u32", at: 24 },
  { name: "reserved", kind: "u32", at: 28 },
  { name: "logGuid", kind: "bytes", length: 16, at: 32 },
  { name: "flushedFileOffset", kind: "u64", at: 48 },
  { name: "lastFileOffset", kind: "u64", at: 56 },
]);

/** Size of one log descriptor. The first sector holds the header and up to 126 of them. */
export const VHDX_LOG_DESCRIPTOR_SIZE = 32;

/** Zero descriptor: `zeroLength` bytes of zeros at `fileOffset` (both multiples of 4 KiB). */
export const VhdxLogZeroDescriptor = defineStruct("log zero descriptor", "le", [
  { name: "signature", kind: "ascii", length: 4, at: 0 },
  { name: "reserved", kind: "u32", at: 4 },
  { name: "zeroLength", kind: "u64", at: 8 },
  { name: "fileOffset", kind: "u64", at: 16 },
  { name: "sequenceNumber", kind: "bytes", length: 8, at: 24 },
]);

/**
 * Data descriptor: one 4 KiB sector to write at `fileOffset`. The sector's first 8 and last 4
 * bytes live here, because the data sector's own first and last bytes hold its signature and
 * sequence number.
 */
export const VhdxLogDataDescriptor = defineStruct("log data descriptor", "le", [
  { name: "signature", kind: "ascii", length: 4, at: 0 },
  { name: "trailingBytes", kind: "bytes", length: 4, at: 4 },
  { name: "leadingBytes", kind: "bytes", length: 8, at: 8 },
  { name: "fileOffset", kind: "u64", at: 16 },
  { name: "sequenceNumber", kind: "bytes", length: 8, at: 24 },
]);

/** Data sector: signature, sequence high half, 4084 data bytes, sequence low half. */
export const VhdxLogDataSector = defineStruct(
  "log data sector",
  "le",
  [
    { name: "signature", kind: "ascii", length: 4, at: 0 },
    { name: "sequenceHigh", kind: "u32", at: 4 },
    { name: "data", kind: "bytes", length: 4084, at: 8 },
    { name: "sequenceLow", kind: "u32", at: 4092 },
  ],
  VHDX_LOG_SECTOR_SIZE,
);

/** Reads an 8-byte little-endian sequence number field. */
export function vhdxSequence(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** Encodes a sequence number as its 8 stored bytes. */
export function vhdxSequenceBytes(seq: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, seq, true);
  return out;
}

// ---- BAT entries ----

/** State of a BAT entry given its low 32 bits. */
export function batEntryState(lo: number): number {
  return lo & VHDX_BAT_STATE_MASK;
}

/**
 * File offset in bytes of a BAT entry given its two halves, or -1 when it lies past 2^53
 * (which no real file reaches: the caller reports it as corrupt).
 */
export function batEntryOffset(lo: number, hi: number): number {
  const mb = (lo >>> 20) + hi * 4096;
  return mb >= 2 ** 33 ? -1 : mb * VHDX_MIB;
}

/** Low and high halves of the BAT entry for `state` at `fileOffset` (a multiple of 1 MiB). */
export function encodeBatEntry(state: number, fileOffset: number): [lo: number, hi: number] {
  const mb = fileOffset / VHDX_MIB;
  return [(((mb % 4096) << 20) | (state & VHDX_BAT_STATE_MASK)) >>> 0, Math.floor(mb / 4096)];
}

/** Block geometry derived from the metadata. */
export interface VhdxGeometry {
  readonly virtualSize: number;
  readonly blockSize: number;
  readonly logicalSectorSize: number;
  /** Payload blocks per sector bitmap block. */
  readonly chunkRatio: number;
  readonly payloadBlocks: number;
  readonly bitmapBlocks: number;
  /** Entries the BAT must hold (payload plus interleaved sector bitmap entries). */
  readonly batEntries: number;
  readonly hasParent: boolean;
}

/**
 * Computes the BAT geometry. Inputs must already be validated (block size a power of two in
 * range, sector size 512 or 4096).
 */
export function vhdxGeometry(virtualSize: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): VhdxGeometry {
  const chunkRatio = (VHDX_SECTORS_PER_BITMAP_BLOCK * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(virtualSize / blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  // Differencing files hold a bitmap entry after every chunk, the last one included; other
  // files omit the trailing one.
  const batEntries = hasParent
    ? bitmapBlocks * (chunkRatio + 1)
    : payloadBlocks === 0
      ? 0
      : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  return { virtualSize, blockSize, logicalSectorSize, chunkRatio, payloadBlocks, bitmapBlocks, batEntries, hasParent };
}

/** BAT index of payload block `block`. */
export function payloadBatIndex(g: VhdxGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

/** BAT index of the sector bitmap block of chunk `chunk`. */
export function bitmapBatIndex(g: VhdxGeometry, chunk: number): number {
  return chunk * (g.chunkRatio + 1) + g.chunkRatio;
}
