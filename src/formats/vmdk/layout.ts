/**
 * On-disk structures of VMDK, after VMware's "Virtual Disk Format 1.1" technical note (hosted
 * sparse extents, stream-optimized compressed sparse extents, text descriptors) and what
 * QEMU 7.2 reads and writes.
 *
 * All integers are little-endian on disk. Offsets and sizes inside a sparse extent are counted
 * in 512-byte sectors.
 *
 * A monolithicSparse / streamOptimized file (QEMU's layout; VMware's hosted sparse is alike):
 * ```
 * sector 0      1 .. 20          21           21+gd            gdOffset        overhead (grain-aligned)
 * [ header  ][ descriptor   ][ redundant GD ][ redundant GTs ][ GD ][ GTs ][ grains ...........       ]
 *   "KDMV"     text, NUL-padded  u32 per GT     512 × u32 each
 * ```
 * The grain directory (GD) holds one u32 per grain table (GT): the GT's sector, 0 = none. A GT
 * holds `numGtesPerGt` u32 grain table entries (GTE): the grain's sector, 0 = unallocated
 * (reads from the parent), 1 = zeroed grain (reads zeros; only with {@link VMDK_FLAG_ZERO_GRAIN}).
 * Writes update the GTE in the GT of both directories.
 *
 * Stream-optimized extents ({@link VMDK_FLAG_COMPRESSED} + {@link VMDK_FLAG_MARKERS}) store each
 * grain as a grain marker (`lba` u64, `size` u32) followed by `size` bytes of deflate data
 * (zlib-wrapped, RFC 1950), padded to a sector; the GTE points at the marker. VMware writes
 * streams front to back: the header says {@link VMDK_GD_AT_END} and the real GD offset is in a
 * footer near the end:
 * ```
 * [ header gd=-1 ][ descriptor ][ grain marker+data ]...[ GT marker ][ GT ]...[ GD marker ][ GD ]
 *   [ footer marker ][ footer = header copy with gdOffset ][ end-of-stream marker ]   (last 1536 bytes)
 * ```
 * A metadata marker is one sector: `value` u64 (sectors of metadata that follow), `size` u32
 * (0), `type` u32 ({@link VmdkMarkerType}).
 *
 * Text descriptor (a file of its own, or embedded in a sparse file at `descriptorOffset`):
 * ```
 * # Disk DescriptorFile
 * version=1
 * CID=5a667a78                      content id (hex), changed when the disk is first written
 * parentCID=ffffffff                CID of the parent when this child was made; ffffffff = none
 * createType="twoGbMaxExtentSparse"
 * parentFileNameHint="base.vmdk"    the parent (backing) disk, when there is one
 *
 * # Extent description
 * RW 4194304 SPARSE "disk-s001.vmdk"          access, size in sectors, type, file
 * RW 2048 FLAT "disk-flat.vmdk" 0             FLAT/VMFS: + start sector in the file (FLAT only)
 * RW 1024 ZERO                                reads as zeros, no file
 *
 * ddb.adapterType = "ide"                     disk database entries: key = "value"
 * ddb.geometry.cylinders = "130"
 * ```
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** Bytes per sector, the unit of every sparse-extent offset. */
export const VMDK_SECTOR_SIZE = 512;
/** "KDMV" read as a string: the magic of a hosted sparse extent (version 1-3). */
export const VMDK_SPARSE_MAGIC = "KDMV";
/** "COWD": the magic of ESX 2.x (vmfsSparse) extents, which vdisk does not read. */
export const VMDK_COWD_MAGIC = "COWD";
/** The first line VMware writes into a descriptor. */
export const VMDK_DESCRIPTOR_SIGNATURE = "# Disk DescriptorFile";

/** Header `flags`: the newline-detection check bytes are valid. */
export const VMDK_FLAG_NL_DETECT = 1 << 0;
/** Header `flags`: a redundant grain directory exists at `rgdOffset`. */
export const VMDK_FLAG_RGD = 1 << 1;
/** Header `flags`: GTE value 1 means a zeroed grain. */
export const VMDK_FLAG_ZERO_GRAIN = 1 << 2;
/** Header `flags`: grains are compressed. */
export const VMDK_FLAG_COMPRESSED = 1 << 16;
/** Header `flags`: grains and metadata carry markers (stream-optimized). */
export const VMDK_FLAG_MARKERS = 1 << 17;
/** Every flag bit vdisk knows; others are kept untouched. */
export const VMDK_KNOWN_FLAGS =
  VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD | VMDK_FLAG_ZERO_GRAIN | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS;

/** `compressAlgorithm`: none. */
export const VMDK_COMPRESSION_NONE = 0;
/** `compressAlgorithm`: deflate (zlib-wrapped). */
export const VMDK_COMPRESSION_DEFLATE = 1;

/** `gdOffset` of streams whose grain directory follows the grains (decoded as −1). */
export const VMDK_GD_AT_END = -1;

/** GTE of an unallocated grain. */
export const VMDK_GTE_UNALLOCATED = 0;
/** GTE of a zeroed grain (when {@link VMDK_FLAG_ZERO_GRAIN} is set). */
export const VMDK_GTE_ZEROED = 1;

/** Types of metadata markers in stream-optimized extents. */
export const VmdkMarkerType = { endOfStream: 0, grainTable: 1, grainDirectory: 2, footer: 3 } as const;

/** Largest grain QEMU accepts: 0x200000 sectors (1 GiB). */
export const VMDK_MAX_GRAIN_SECTORS = 0x200000;
/** Largest compressed grain vdisk decodes (a buffer of this size is needed per grain). */
export const VMDK_MAX_COMPRESSED_GRAIN = 64 << 20;
/** Most GTEs per grain table QEMU accepts. */
export const VMDK_MAX_GTES_PER_GT = 512;
/** Most grain directory entries QEMU accepts (32 Mi). */
export const VMDK_MAX_GD_ENTRIES = 32 * 1024 * 1024;
/** A GTE is a u32 sector number: extent files cannot grow past 2^32 sectors. */
export const VMDK_EXTENT_MAX_SECTORS = 2 ** 32;
/** Largest descriptor vdisk parses (QEMU reads at most 1 MiB of it). */
export const VMDK_DESCRIPTOR_MAX = 1 << 20;
/** Most extents a descriptor may list (64 TiB of 2 GiB extents). */
export const VMDK_MAX_EXTENTS = 32768;

/** What QEMU's create writes: 64 KiB grains, 512-entry grain tables, a 20-sector descriptor. */
export const VMDK_DEFAULT_GRANULARITY = 128;
export const VMDK_DEFAULT_GTES_PER_GT = 512;
export const VMDK_DEFAULT_DESCRIPTOR_SECTORS = 20;
/** Extent size of the twoGbMaxExtent subformats. */
export const VMDK_SPLIT_EXTENT_SIZE = 0x80000000;

/**
 * The sparse extent header: one sector, magic first. Unknown flag bits and the padding are
 * kept as read.
 */
export const VmdkSparseHeaderCodec = defineStruct(
  "VMDK sparse header",
  "le",
  [
    { name: "magic", kind: "ascii", length: 4, at: 0 },
    /** 1 (hosted sparse), 2 (with zeroed-grain GTEs), 3 (stream-optimized / CBT). */
    { name: "version", kind: "u32", at: 4 },
    { name: "flags", kind: "u32", at: 8 },
    /** Extent size in sectors. */
    { name: "capacity", kind: "u64", at: 12 },
    /** Grain size in sectors. */
    { name: "granularity", kind: "u64", at: 20 },
    /** Sector of the embedded descriptor, 0 = none. */
    { name: "descriptorOffset", kind: "u64", at: 28 },
    /** Sectors reserved for the embedded descriptor. */
    { name: "descriptorSize", kind: "u64", at: 36 },
    { name: "numGtesPerGt", kind: "u32", at: 44 },
    /** Sector of the redundant grain directory (used when {@link VMDK_FLAG_RGD} is set). */
    { name: "rgdOffset", kind: "u64", at: 48 },
    /** Sector of the grain directory; {@link VMDK_GD_AT_END} (all ones) = see the footer. */
    { name: "gdOffset", kind: "u64x", at: 56 },
    /** Sectors of metadata before the first grain ("grain offset"). */
    { name: "overhead", kind: "u64", at: 64 },
    { name: "uncleanShutdown", kind: "u8", at: 72 },
    /** The check bytes '\n', ' ', '\r', '\n' (detect text-mode transfers). */
    { name: "singleEndLineChar", kind: "u8", at: 73 },
    { name: "nonEndLineChar", kind: "u8", at: 74 },
    { name: "doubleEndLineChar1", kind: "u8", at: 75 },
    { name: "doubleEndLineChar2", kind: "u8", at: 76 },
    { name: "compressAlgorithm", kind: "u16", at: 77 },
    { name: "pad", kind: "bytes", length: 433, at: 79 },
  ],
  VMDK_SECTOR_SIZE,
);
/** A decoded sparse extent header. */
export type VmdkSparseHeader = ReturnType<typeof VmdkSparseHeaderCodec.decode>;

/** The start of a compressed grain: the grain's sector in the extent and the data's length. */
export const VmdkGrainMarkerCodec = defineStruct("VMDK grain marker", "le", [
  { name: "lba", kind: "u64", at: 0 },
  { name: "size", kind: "u32", at: 8 },
]);

/** A metadata marker (the first 16 bytes of its sector; the rest is zero). */
export const VmdkMarkerCodec = defineStruct("VMDK marker", "le", [
  /** Sectors of metadata that follow (0 for the end-of-stream marker). */
  { name: "value", kind: "u64", at: 0 },
  /** Always 0 for metadata markers (a grain marker's compressed size otherwise). */
  { name: "size", kind: "u32", at: 8 },
  { name: "type", kind: "u32", at: 12 },
]);

/** Bytes from the end of a stream where the footer marker starts (marker, footer, EOS). */
export const VMDK_FOOTER_FROM_END = 3 * VMDK_SECTOR_SIZE;

/** Extent types of descriptor extent lines that vdisk reads. */
export const VmdkExtentType = { sparse: "SPARSE", flat: "FLAT", vmfs: "VMFS", zero: "ZERO" } as const;

/** Create subformats (`-o subformat=`), as QEMU names them. */
export const VMDK_SUBFORMATS = [
  "monolithicSparse",
  "monolithicFlat",
  "twoGbMaxExtentSparse",
  "twoGbMaxExtentFlat",
  "streamOptimized",
] as const;
/** One create subformat. */
export type VmdkSubformat = (typeof VMDK_SUBFORMATS)[number];

/** `-o adapter_type=` values QEMU accepts (case-sensitive). */
export const VMDK_ADAPTER_TYPES = ["ide", "buslogic", "lsilogic", "legacyESX"] as const;
