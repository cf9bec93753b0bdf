/**
 * On-disk structures of VHD (Virtual PC / Virtual Server / Hyper-V "Virtual Hard Disk"),
 * after Microsoft's "Virtual Hard Disk Image Format Specification", version 1.0 (2006), with
 * the size conventions of later producers (Hyper-V, Disk2VHD, QEMU).
 *
 * All integers are big-endian on disk, except the UTF-16 parent locator data of `W2ku`/`W2ru`
 * locators, which is little-endian.
 *
 * ```
 * fixed:         [ guest data: currentSize bytes ............................ ][ footer 512 ]
 *
 * dynamic /      0        512                1536       tableOffset
 * differencing:  [ footer  ][ dynamic header  ][ parent  ][ BAT: maxTableEntries ][ block ]...[ footer ]
 *                [ copy    ][ 1024 bytes      ][ locator ][ u32 each, 512-aligned][       ]   [ 512    ]
 *                                               data (differencing only, anywhere before the blocks)
 *
 * block:         [ sector bitmap: ceil(blockSize/512/8) rounded up to 512 ][ blockSize bytes of data ]
 *                 bit i (MSB first in each byte) set = sector i is stored in this block;
 *                 clear = zero (dynamic) or the parent's sector (differencing).
 * ```
 *
 * A BAT entry is the block's sector number (its bitmap's file offset / 512), or 0xFFFFFFFF when the
 * block is not allocated. Checksums are the ones' complement of the byte sum of the structure
 * with its checksum field taken as zero.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** Size of the footer (and of its copy at the start of dynamic disks). */
export const VHD_FOOTER_SIZE = 512;
/** Size of the dynamic disk header. */
export const VHD_DYNAMIC_HEADER_SIZE = 1024;
/** Footer cookie. */
export const VHD_FOOTER_COOKIE = "conectix";
/** Dynamic header cookie. */
export const VHD_DYNAMIC_COOKIE = "cxsparse";
/** `features`: the "reserved" bit every footer must have set. */
export const VHD_FEATURES_RESERVED = 0x2;
/** `fileFormatVersion` / `headerVersion` 1.0. */
export const VHD_VERSION_1_0 = 0x00010000;
/** BAT value of an unallocated block. */
export const VHD_BAT_UNALLOCATED = 0xffffffff;
/** VHD timestamps count seconds from 2000-01-01T00:00:00Z. */
export const VHD_EPOCH_UNIX_SECONDS = 946684800;
/** The default (and Hyper-V's) block size: 2 MiB. */
export const VHD_DEFAULT_BLOCK_SIZE = 0x200000;
/**
 * The largest disk QEMU and Hyper-V accept: 0xff000000 sectors (2040 GiB). The format's own
 * 32-bit BAT would allow more, but no producer writes larger VHDs.
 */
export const VHD_MAX_SECTORS = 0xff000000;
/** Largest BAT QEMU reads (entries × 4 must fit an int). vdisk keeps the same bound. */
export const VHD_MAX_TABLE_ENTRIES = Math.floor(0x7fffffff / 4);

/** `diskType` values. */
export const VhdDiskType = { fixed: 2, dynamic: 3, differencing: 4 } as const;
/** A `diskType` value. */
export type VhdDiskTypeName = keyof typeof VhdDiskType;

/** The 512-byte hard disk footer. */
export const VhdFooterCodec = defineStruct(
  "VHD footer",
  "be",
  [
    { name: "cookie", kind: "ascii", length: 8, at: 0 },
    { name: "features", kind: "u32", at: 8 },
    { name: "fileFormatVersion", kind: "u32", at: 12 },
    /** Offset of the dynamic header; all-ones (−1) for fixed disks. */
    { name: "dataOffset", kind: "u64x", at: 16 },
    /** Seconds since 2000-01-01 UTC. */
    { name: "timestamp", kind: "u32", at: 24 },
    { name: "creatorApp", kind: "ascii", length: 4, at: 28 },
    /** Major version in the high 16 bits, minor in the low. */
    { name: "creatorVersion", kind: "u32", at: 32 },
    { name: "creatorHostOs", kind: "ascii", length: 4, at: 36 },
    /** Bytes, as created. */
    { name: "originalSize", kind: "u64", at: 40 },
    /** Bytes, now. */
    { name: "currentSize", kind: "u64", at: 48 },
    { name: "cylinders", kind: "u16", at: 56 },
    { name: "heads", kind: "u8", at: 58 },
    { name: "sectorsPerTrack", kind: "u8", at: 59 },
    { name: "diskType", kind: "u32", at: 60 },
    { name: "checksum", kind: "u32", at: 64 },
    { name: "uniqueId", kind: "bytes", length: 16, at: 68 },
    { name: "savedState", kind: "u8", at: 84 },
    { name: "reserved", kind: "bytes", length: 427, at: 85 },
  ],
  VHD_FOOTER_SIZE,
);
/** A decoded footer. */
export type VhdFooter = ReturnType<typeof VhdFooterCodec.decode>;

/** One of the eight parent locator entries of the dynamic header (24 bytes). */
export const VhdParentLocatorCodec = defineStruct(
  "VHD parent locator entry",
  "be",
  [
    /** Four characters: `W2ru`, `W2ku`, `Wi2r`, `Wi2k`, `Mac `, `MacX`, or zeros when unused. */
    { name: "platformCode", kind: "ascii", length: 4, at: 0 },
    /** Space reserved for the locator data: sectors per the spec, bytes as Hyper-V writes it. */
    { name: "platformDataSpace", kind: "u32", at: 4 },
    /** Bytes of locator data. */
    { name: "platformDataLength", kind: "u32", at: 8 },
    { name: "reserved", kind: "u32", at: 12 },
    /** File offset of the locator data. */
    { name: "platformDataOffset", kind: "u64", at: 16 },
  ],
  24,
);
/** A decoded parent locator entry. */
export type VhdParentLocator = ReturnType<typeof VhdParentLocatorCodec.decode>;

/** Number of parent locator entries in the dynamic header. */
export const VHD_PARENT_LOCATOR_COUNT = 8;

/** The 1024-byte dynamic disk header (dynamic and differencing disks). */
export const VhdDynamicHeaderCodec = defineStruct(
  "VHD dynamic header",
  "be",
  [
    { name: "cookie", kind: "ascii", length: 8, at: 0 },
    /** Unused; all-ones. */
    { name: "dataOffset", kind: "u64x", at: 8 },
    /** File offset of the BAT. */
    { name: "tableOffset", kind: "u64", at: 16 },
    { name: "headerVersion", kind: "u32", at: 24 },
    /** BAT entries (blocks the table can address). */
    { name: "maxTableEntries", kind: "u32", at: 28 },
    /** Bytes of guest data per block; a power of two. */
    { name: "blockSize", kind: "u32", at: 32 },
    { name: "checksum", kind: "u32", at: 36 },
    /** Differencing: the parent footer's `uniqueId`. */
    { name: "parentUniqueId", kind: "bytes", length: 16, at: 40 },
    /** Differencing: the parent's modification time (VHD seconds). */
    { name: "parentTimestamp", kind: "u32", at: 56 },
    { name: "reserved1", kind: "u32", at: 60 },
    /** Differencing: the parent's file name, UTF-16 big-endian, NUL-padded. */
    { name: "parentUnicodeName", kind: "bytes", length: 512, at: 64 },
    /** Eight {@link VhdParentLocatorCodec} entries. */
    { name: "parentLocators", kind: "bytes", length: 24 * VHD_PARENT_LOCATOR_COUNT, at: 576 },
    { name: "reserved2", kind: "bytes", length: 256, at: 768 },
  ],
  VHD_DYNAMIC_HEADER_SIZE,
);
/** A decoded dynamic header. */
export type VhdDynamicHeader = ReturnType<typeof VhdDynamicHeaderCodec.decode>;

/** Offset of the checksum field in the footer. */
export const VHD_FOOTER_CHECKSUM_OFFSET = VhdFooterCodec.offsetOf("checksum");
/** Offset of the checksum field in the dynamic header. */
export const VHD_DYNAMIC_CHECKSUM_OFFSET = VhdDynamicHeaderCodec.offsetOf("checksum");

/**
 * The VHD checksum of `bytes`: ones' complement of the sum of all bytes, with the four bytes
 * at `checksumOffset` counted as zero.
 */
export function vhdChecksum(bytes: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue;
    sum += bytes[i];
  }
  return ~sum >>> 0;
}

/** Encodes a footer with its checksum computed. */
export function encodeVhdFooter(footer: VhdFooter): Uint8Array {
  const buf = VhdFooterCodec.encode({ ...footer, checksum: 0 });
  const sum = vhdChecksum(buf, VHD_FOOTER_CHECKSUM_OFFSET);
  new DataView(buf.buffer, buf.byteOffset).setUint32(VHD_FOOTER_CHECKSUM_OFFSET, sum);
  return buf;
}

/** Encodes a dynamic header with its checksum computed. */
export function encodeVhdDynamicHeader(header: VhdDynamicHeader): Uint8Array {
  const buf = VhdDynamicHeaderCodec.encode({ ...header, checksum: 0 });
  const sum = vhdChecksum(buf, VHD_DYNAMIC_CHECKSUM_OFFSET);
  new DataView(buf.buffer, buf.byteOffset).setUint32(VHD_DYNAMIC_CHECKSUM_OFFSET, sum);
  return buf;
}

/** Bytes of the sector bitmap in front of each block of `blockSize` bytes. */
export function vhdBitmapSize(blockSize: number): number {
  return Math.ceil(blockSize / 512 / 8 / 512) * 512;
}

/** Parent locator platform codes vdisk reads and writes. */
export const VhdPlatform = {
  /** Windows relative path, UTF-16 little-endian. */
  relative: "W2ru",
  /** Windows absolute path, UTF-16 little-endian. */
  absolute: "W2ku",
  /** Mac OS X file URL, UTF-8. */
  macUrl: "MacX",
} as const;
