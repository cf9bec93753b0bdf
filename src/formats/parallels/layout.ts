/**
 * On-disk structures of the Parallels expandable image format (Parallels Desktop, Virtuozzo
 * ploop), after QEMU's docs/interop/parallels.txt.
 *
 * All integers are little-endian on disk.
 *
 * ```
 * 0          64                        dataOff × 512
 * [ header  ][ catalog (BAT): u32 × n ][ pad ][ cluster ][ cluster ] ... [ format extension cluster ]
 *
 * BAT entry: 0 = not allocated (reads as zeros); otherwise the cluster's file offset in sectors
 *            ("WithoutFreeSpace", version 1) or in clusters ("WithouFreSpacExt", version 2).
 * extOff:    sector offset of one cluster holding the format extension (dirty bitmaps), or 0.
 * ```
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** Header size; the BAT follows it directly. */
export const PARALLELS_HEADER_SIZE = 64;
/** Magic of images whose BAT counts sectors. */
export const PARALLELS_MAGIC_V1 = "WithoutFreeSpace";
/** Magic of images whose BAT counts clusters (with format extension support). */
export const PARALLELS_MAGIC_V2 = "WithouFreSpacExt";
/** The only `version`. */
export const PARALLELS_VERSION = 2;
/** `inuse` while software has the image open read-write. */
export const PARALLELS_INUSE_OPEN = 0x746f6e59;
/** `inuse` of a cleanly closed image ("v2.1"). */
export const PARALLELS_INUSE_CLOSED = 0x312e3276;
/** Default cluster size: 1 MiB. */
export const PARALLELS_DEFAULT_CLUSTER_SIZE = 1 << 20;
/** Geometry QEMU records (unused by the format itself). */
export const PARALLELS_HEADS = 16;
/** Sectors per cylinder in the recorded geometry. */
export const PARALLELS_SECTORS_PER_CYLINDER = 32;
/** Largest `tracks` (sectors per cluster) QEMU accepts. */
export const PARALLELS_MAX_TRACKS = Math.floor(0x7fffffff / 513);
/** Largest catalog QEMU accepts (entries × 4 must fit an int). */
export const PARALLELS_MAX_BAT_ENTRIES = Math.floor(0x7fffffff / 4);

/** The 64-byte header. */
export const ParallelsHeaderCodec = defineStruct(
  "Parallels header",
  "le",
  [
    { name: "magic", kind: "ascii", length: 16, at: 0 },
    { name: "version", kind: "u32", at: 16 },
    { name: "heads", kind: "u32", at: 20 },
    { name: "cylinders", kind: "u32", at: 24 },
    /** Cluster size in sectors. */
    { name: "tracks", kind: "u32", at: 28 },
    /** Catalog entries (clusters the BAT can map). */
    { name: "batEntries", kind: "u32", at: 32 },
    /** Virtual size in sectors (version 1: only the low 32 bits count). */
    { name: "nbSectors", kind: "u64", at: 36 },
    { name: "inuse", kind: "u32", at: 44 },
    /** Sector offset of the data area (0 in old version 1 images: right after the BAT). */
    { name: "dataOff", kind: "u32", at: 48 },
    /** Bit 0: empty image. */
    { name: "flags", kind: "u32", at: 52 },
    /** Sector offset of the format extension cluster, or 0. */
    { name: "extOff", kind: "u64", at: 56 },
  ],
  PARALLELS_HEADER_SIZE,
);
/** A decoded header. */
export type ParallelsHeader = ReturnType<typeof ParallelsHeaderCodec.decode>;

/** Offsets of the fields vdisk rewrites in place. */
export const PARALLELS_INUSE_OFFSET = ParallelsHeaderCodec.offsetOf("inuse");
/** Offset of `dataOff`. */
export const PARALLELS_DATA_OFF_OFFSET = ParallelsHeaderCodec.offsetOf("dataOff");
/** Offset of `nbSectors`. */
export const PARALLELS_NB_SECTORS_OFFSET = ParallelsHeaderCodec.offsetOf("nbSectors");
/** Offset of `extOff`. */
export const PARALLELS_EXT_OFF_OFFSET = ParallelsHeaderCodec.offsetOf("extOff");

/** Magic of the format extension cluster: 0xAB234CEF23DCEA87, as stored. */
export const PARALLELS_EXT_MAGIC = Uint8Array.of(0x87, 0xea, 0xdc, 0x23, 0xef, 0x4c, 0x23, 0xab);
/** Feature magic ending the feature list (all zero). */
export const PARALLELS_FEATURE_END = new Uint8Array(8);
/** Feature magic of a dirty bitmap: 0x20385FAE252CB34A, as stored. */
export const PARALLELS_FEATURE_DIRTY_BITMAP = Uint8Array.of(0x4a, 0xb3, 0x2c, 0x25, 0xae, 0x5f, 0x38, 0x20);

/** Start of the format extension cluster: magic and MD5 of the rest of the cluster. */
export const ParallelsExtHeaderCodec = defineStruct(
  "Parallels format extension header",
  "le",
  [
    { name: "magic", kind: "bytes", length: 8, at: 0 },
    { name: "checksum", kind: "bytes", length: 16, at: 8 },
  ],
  24,
);

/** One feature section header; `dataSize` bytes of data follow, padded to 8. */
export const ParallelsFeatureHeaderCodec = defineStruct(
  "Parallels feature header",
  "le",
  [
    { name: "magic", kind: "bytes", length: 8, at: 0 },
    /** Bit 0: necessary; bit 1: transit. */
    { name: "flags", kind: "bytes", length: 8, at: 8 },
    { name: "dataSize", kind: "u32", at: 16 },
    { name: "unused", kind: "u32", at: 20 },
  ],
  24,
);

/** The fixed part of a dirty bitmap feature; `l1Size` u64 L1 entries follow. */
export const ParallelsDirtyBitmapCodec = defineStruct(
  "Parallels dirty bitmap feature",
  "le",
  [
    /** Bits in the bitmap (the disk size in sectors). */
    { name: "size", kind: "u64", at: 0 },
    { name: "id", kind: "bytes", length: 16, at: 8 },
    /** Sectors per bit. */
    { name: "granularity", kind: "u32", at: 24 },
    { name: "l1Size", kind: "u32", at: 28 },
  ],
  32,
);
