/**
 * Bochs "growing" (sparse) disk images — the `Redolog`/`Growing` header of the Bochs emulator's
 * hdimage code, as QEMU's read-only driver reads it. Read-only: neither Bochs' tools nor qemu-img
 * create them from other formats.
 *
 * All integers are little-endian.
 * ```
 * 0      32       48        64        0x48      headerSize           dataOffset
 * [magic][type   ][subtype ][ver,hsz ][redolog ][ catalog: u32 × n ][ extents ... ]
 * extent k (catalog entry value k) at dataOffset + k × (bitmapSectors + extentSectors) × 512:
 *   [ bitmap: 1 bit per sector of the extent, LSB first ][ extent data sectors ]
 * catalog entry 0xFFFFFFFF: the extent was never written (reads zeros).
 * ```
 * Version 2 headers have a reserved u32 before the u64 disk size; version 1 headers do not.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

export const BOCHS_MAGIC = "Bochs Virtual HD Image";
export const BOCHS_TYPE_REDOLOG = "Redolog";
export const BOCHS_SUBTYPE_GROWING = "Growing";
/** `version` of the current header (v2: reserved word before the disk size). */
export const BOCHS_VERSION_2 = 0x00020000;
/** `version` of the old header (disk size right after the extent size). */
export const BOCHS_VERSION_1 = 0x00010000;
/** Catalog entry of an extent never written. */
export const BOCHS_UNALLOCATED = 0xffffffff;
export const BOCHS_SECTOR = 512;
/** The header block QEMU reads (its struct is 512 bytes). */
export const BOCHS_HEADER_SIZE = 512;
/** Largest catalog QEMU accepts: its byte size must fit an int. */
export const BOCHS_MAX_CATALOG_ENTRIES = Math.floor(0x7fffffff / 4);
/** Largest extent QEMU accepts (bytes). */
export const BOCHS_MAX_EXTENT_SIZE = 0x800000;

/** The header, v2 layout (v1 images keep the disk size where v2 has `reserved`). */
export const BochsHeaderCodec = defineStruct("bochs header", "le", [
  { name: "magic", kind: "ascii", length: 32, at: 0 },
  { name: "type", kind: "ascii", length: 16, at: 32 },
  { name: "subtype", kind: "ascii", length: 16, at: 48 },
  { name: "version", kind: "u32", at: 0x40 },
  { name: "headerSize", kind: "u32", at: 0x44 },
  { name: "catalogEntries", kind: "u32", at: 0x48 },
  { name: "bitmapSize", kind: "u32", at: 0x4c },
  { name: "extentSize", kind: "u32", at: 0x50 },
  { name: "reserved", kind: "u32", at: 0x54 },
  { name: "diskSize", kind: "u64", at: 0x58 },
]);

/** The NUL-terminated text of a fixed-size ASCII field. */
export function bochsText(field: string): string {
  const nul = field.indexOf("\0");
  return nul < 0 ? field : field.slice(0, nul);
}
