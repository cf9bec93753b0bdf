/**
 * On-disk structures of VDI (VirtualBox Disk Image), header version 1.1, as VirtualBox and
 * QEMU write it (QEMU's block/vdi.c and VirtualBox's VDICore.h document the same layout).
 *
 * All integers are little-endian on disk. UUIDs are stored with their first three groups
 * little-endian (as Microsoft GUIDs).
 *
 * ```
 * 0        64         72                     512          offsetBmap + 4 × blocksInImage
 * [ text  ][ sig,ver ][ header v1.1 (0x180) ][ pad ][ block map: u32 per block ][ pad ][ blocks ... ]
 *                                                   ^ offsetBmap                       ^ offsetData
 * block map entry: index of the block in the data area (block i lives at offsetData + i × blockSize),
 *                  0xFFFFFFFF = never allocated, 0xFFFFFFFE = discarded (both read as zeros).
 * ```
 * Dynamic images append blocks in allocation order; `blocksAllocated` is the number of blocks
 * in the data area (the next block's index). Static images map block i to data block i.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** Size of the header area (pre-header + header + padding) QEMU reads and writes. */
export const VDI_HEADER_SIZE = 512;
/** `signature`. */
export const VDI_SIGNATURE = 0xbeda107f;
/** `version` 1.1 (major in the high 16 bits). */
export const VDI_VERSION_1_1 = 0x00010001;
/** `headerSize` of a version 1.1 header. */
export const VDI_HEADER_SIZE_1_1 = 0x180;
/** `imageType` values. */
export const VdiImageType = { dynamic: 1, static: 2, undo: 3, differencing: 4 } as const;
/** Block map entry of a block never written. */
export const VDI_UNALLOCATED = 0xffffffff;
/** Block map entry of a discarded block. */
export const VDI_DISCARDED = 0xfffffffe;
/** The only block size QEMU (and VirtualBox by default) uses: 1 MiB. */
export const VDI_BLOCK_SIZE = 1 << 20;
/** Sector size, the only one supported. */
export const VDI_SECTOR_SIZE = 512;
/**
 * Most blocks QEMU accepts: the block map (4 bytes each, rounded up to a sector) must stay
 * below 2 GiB.
 */
export const VDI_BLOCKS_IN_IMAGE_MAX = Math.floor((0x80000000 - 512) / 4);
/** Largest disk size QEMU accepts: {@link VDI_BLOCKS_IN_IMAGE_MAX} blocks of 1 MiB. */
export const VDI_DISK_SIZE_MAX = VDI_BLOCKS_IN_IMAGE_MAX * VDI_BLOCK_SIZE;
/** The text vdisk writes at the start of the header (VirtualBox ignores its value). */
export const VDI_TEXT = "<<< vdisk Virtual Disk Image >>>\n";

/** The 512-byte header area. */
export const VdiHeaderCodec = defineStruct(
  "VDI header",
  "le",
  [
    { name: "text", kind: "ascii", length: 64, at: 0 },
    { name: "signature", kind: "u32", at: 64 },
    { name: "version", kind: "u32", at: 68 },
    { name: "headerSize", kind: "u32", at: 72 },
    { name: "imageType", kind: "u32", at: 76 },
    { name: "imageFlags", kind: "u32", at: 80 },
    { name: "description", kind: "bytes", length: 256, at: 84 },
    /** File offset of the block map (sector-aligned). */
    { name: "offsetBmap", kind: "u32", at: 340 },
    /** File offset of the data area (sector-aligned). */
    { name: "offsetData", kind: "u32", at: 344 },
    { name: "cylinders", kind: "u32", at: 348 },
    { name: "heads", kind: "u32", at: 352 },
    { name: "sectors", kind: "u32", at: 356 },
    { name: "sectorSize", kind: "u32", at: 360 },
    { name: "unused1", kind: "u32", at: 364 },
    /** Virtual size in bytes. */
    { name: "diskSize", kind: "u64", at: 368 },
    { name: "blockSize", kind: "u32", at: 376 },
    { name: "blockExtra", kind: "u32", at: 380 },
    { name: "blocksInImage", kind: "u32", at: 384 },
    { name: "blocksAllocated", kind: "u32", at: 388 },
    { name: "uuidImage", kind: "bytes", length: 16, at: 392 },
    { name: "uuidLastSnap", kind: "bytes", length: 16, at: 408 },
    { name: "uuidLink", kind: "bytes", length: 16, at: 424 },
    { name: "uuidParent", kind: "bytes", length: 16, at: 440 },
    { name: "lchsCylinders", kind: "u32", at: 456 },
    { name: "lchsHeads", kind: "u32", at: 460 },
    { name: "lchsSectors", kind: "u32", at: 464 },
    { name: "lchsSectorSize", kind: "u32", at: 468 },
    { name: "reserved", kind: "bytes", length: 40, at: 472 },
  ],
  VDI_HEADER_SIZE,
);
/** A decoded VDI header. */
export type VdiHeader = ReturnType<typeof VdiHeaderCodec.decode>;

/** Offset of `diskSize` (checked before decoding, to report sizes past 2^53 as QEMU does). */
export const VDI_DISK_SIZE_OFFSET = VdiHeaderCodec.offsetOf("diskSize");
/** Offset of `blocksAllocated` (rewritten alone when blocks are added). */
export const VDI_BLOCKS_ALLOCATED_OFFSET = VdiHeaderCodec.offsetOf("blocksAllocated");
