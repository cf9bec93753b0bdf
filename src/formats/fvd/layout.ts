/**
 * FVD ("Fast Virtual Disk", IBM, 2010-2011) on-disk layout, version 1 as the driver code wrote
 * it (not the January 2011 wiki draft, which has another magic and header).
 *
 * Spec: the project's specification `../shared/specs/fvd.md` ("FVD — the format as this project
 * implements it"), §1 header, §2 layout and journal, §3 semantics, §7 test vectors. Where the
 * spec's "Project decisions" section deliberately differs from the original code, the constant
 * or comment says [decision]; {@link FVD_PROJECT_DECISIONS} lists them for `vdisk info`.
 *
 * All integers are little-endian on disk. The header struct is packed (4336 bytes); every
 * 4-byte field after `version` is a C `int32_t`, every 8-byte field an `int64_t`, and strings are
 * NUL-terminated `char[]` arrays.
 *
 * ```
 *  byte 0             FvdHeader (4336 B) + zero pad           header region, 8192 B
 *  8192               bitmap         (only with a base image) bitmap_size B, multiple of 4096
 *  8192+bitmap_size   lookup table   (only if compact_image)  table_size B, multiple of 4096
 *                     (prefetch profile, always 0 B)
 *  journal_offset     journal        (only if bitmap or table) journal_size B, 512-B sectors
 *  metadata_size      data region    (unless data_file is set: then data starts at 0 there)
 * ```
 *
 * Bitmap: one bit per `block_size` bytes of `[0, base_img_size)`, bit b = bit (b % 8), LSB
 * first, of byte b / 8; 1 = the block lives in the FVD image, 0 = in the base image.
 * Table: one u32 per `chunk_size` bytes of the disk: 0xFFFFFFFF = empty, bit 31 = "dirty" (in
 * memory and in journal records only), else the physical chunk index.
 * @module
 */
import { defineStruct } from "../../codec/struct.js";

/** `('Q'<<24)|('C'<<16)|(0xF5<<8)|0xA9`, bytes A9 F5 43 51. */
export const FVD_MAGIC = 0x5143f5a9;
/** The only version (probe and open both require it). */
export const FVD_VERSION = 1;
/** The sector unit of journal records and in-memory arithmetic. */
export const FVD_SECTOR = 512;
/** Bytes reserved for the header by create: ROUND_UP(4336, 4096). */
export const FVD_HEADER_REGION = 8192;
/** Alignment of the bitmap, table and journal regions. */
export const FVD_REGION_ALIGN = 4096;

/** The header, field by field (spec §1.2): the one list that drives decode, encode and size. */
export const FVD_HEADER_FIELDS = [
  { name: "magic", kind: "u32", at: 0 },
  { name: "version", kind: "u32", at: 4 },
  /** Boolean: no base image, or everything pulled from it; base, bitmap, copy-on-read ignored. */
  { name: "all_data_in_fvd_img", kind: "u32", at: 8 },
  /** Guest size in bytes, a multiple of 512. */
  { name: "virtual_disk_size", kind: "u64", at: 12 },
  /** Header + bitmap + table + profile + journal; the data offset when there is no data file. */
  { name: "metadata_size", kind: "u64", at: 20 },
  { name: "base_img", kind: "ascii", length: 1024, at: 28 },
  { name: "base_img_fmt", kind: "ascii", length: 16, at: 1052 },
  /** Bytes covered by the bitmap: ROUND_UP(min(virtual size, base length), 512). */
  { name: "base_img_size", kind: "u64", at: 1068 },
  /** 8192 with a base image, else 0. */
  { name: "bitmap_offset", kind: "u64", at: 1076 },
  /** Bytes, a multiple of 4096; 0 without a base. */
  { name: "bitmap_size", kind: "u64", at: 1084 },
  /** Bytes per bitmap bit, a multiple of 512. */
  { name: "block_size", kind: "u32", at: 1092 },
  { name: "copy_on_read", kind: "u32", at: 1096 },
  { name: "max_outstanding_copy_on_read_data", kind: "u64", at: 1100 },
  { name: "data_file", kind: "ascii", length: 1024, at: 1108 },
  { name: "data_file_fmt", kind: "ascii", length: 16, at: 2132 },
  /** Seconds; <= 0 disables prefetch. */
  { name: "prefetch_start_delay", kind: "u32", at: 2148 },
  { name: "prefetch_profile_offset", kind: "u64", at: 2152 },
  { name: "prefetch_profile_entries", kind: "u64", at: 2160 },
  { name: "num_prefetch_slots", kind: "u32", at: 2168 },
  { name: "bytes_per_prefetch", kind: "u32", at: 2172 },
  /** ms. */
  { name: "prefetch_read_throughput_measure_time", kind: "u32", at: 2176 },
  /** ms. */
  { name: "prefetch_write_throughput_measure_time", kind: "u32", at: 2180 },
  /** 0..100: EWMA weight alpha/100. */
  { name: "prefetch_perf_calc_alpha", kind: "u32", at: 2184 },
  /** KB/s. */
  { name: "prefetch_min_read_throughput", kind: "u32", at: 2188 },
  { name: "prefetch_min_write_throughput", kind: "u32", at: 2192 },
  { name: "prefetch_max_read_throughput", kind: "u32", at: 2196 },
  { name: "prefetch_max_write_throughput", kind: "u32", at: 2200 },
  /** ms: upper bound of the random prefetch pause. */
  { name: "prefetch_throttle_time", kind: "u32", at: 2204 },
  /** Boolean: the lookup table is in use. */
  { name: "compact_image", kind: "u32", at: 2208 },
  { name: "table_offset", kind: "u64", at: 2212 },
  { name: "chunk_size", kind: "u64", at: 2220 },
  { name: "storage_grow_unit", kind: "u64", at: 2228 },
  /** A shell command the original ran to grow block devices. [decision] Never executed here. */
  { name: "add_storage_cmd", kind: "ascii", length: 2048, at: 2236 },
  { name: "journal_offset", kind: "u64", at: 4284 },
  /** Bytes; 0 = no journal. */
  { name: "journal_size", kind: "u64", at: 4292 },
  /** Boolean: 1 after create and a clean close, 0 while open read-write. */
  { name: "clean_shutdown", kind: "u32", at: 4300 },
  { name: "need_zero_init", kind: "u32", at: 4304 },
  { name: "generate_prefetch_profile", kind: "u32", at: 4308 },
  { name: "unit_of_PrefetchProfileEntry_len", kind: "u32", at: 4312 },
  { name: "profile_directed_prefetch_start_delay", kind: "u32", at: 4316 },
  { name: "write_updates_base_img", kind: "ascii", length: 16, at: 4320 },
] as const;

/** The header codec (4336 bytes, packed). */
export const FvdHeaderCodec = defineStruct("FVD header", "le", FVD_HEADER_FIELDS, 4336);

/**
 * The decoded header. Strings are the whole `char[]` (NULs and any bytes after the terminator
 * kept, so a rewrite preserves them; see {@link fvdString}); 4-byte fields after `version` hold
 * their signed (`int32_t`) value.
 */
export type FvdHeader = ReturnType<typeof FvdHeaderCodec.decode>;

/** Name of a header field. */
export type FvdHeaderField = keyof FvdHeader & string;

/** The packed header struct size. */
export const FVD_HEADER_SIZE = FvdHeaderCodec.size;

/** The 4-byte header fields that are C `int32_t` (all but magic and version). */
export function fvdIsSignedField(name: string, byteWidth: number): boolean {
  return byteWidth === 4 && name !== "magic" && name !== "version";
}

/** The C string held by a `char[]` field: up to the first NUL. */
export function fvdString(raw: string): string {
  const nul = raw.indexOf("\0");
  return nul < 0 ? raw : raw.slice(0, nul);
}

// ---- lookup table ----

/** Table entry of an unallocated chunk. */
export const FVD_EMPTY_TABLE = 0xffffffff;
/** Bit 31 of a table entry: changed in memory, not yet journaled. */
export const FVD_DIRTY_TABLE = 0x80000000;
/** The largest physical chunk index [inference: bit 31 is the dirty flag, all-ones is empty]. */
export const FVD_MAX_CHUNK_INDEX = 0x7ffffffe;

// ---- journal ----

/** Record type: "these sectors' blocks now live in the FVD image". Bytes ED B8 2A 3F. */
export const FVD_BITMAP_JRECORD = 0x3f2ab8ed;
/** Record type: "table entries first..first+count-1 are now these". Bytes AC F7 E6 B4. */
export const FVD_TABLE_JRECORD = 0xb4e6f7ac;
/** The terminator: a u32 0 ends the records of a sector. */
export const FVD_EMPTY_JRECORD = 0;

/** A bitmap record (16 bytes). */
export const FvdBitmapJRecordCodec = defineStruct(
  "FVD bitmap journal record",
  "le",
  [
    { name: "type", kind: "u32", at: 0 },
    { name: "nb_sectors", kind: "u32", at: 4 },
    /** First virtual sector (an `int64_t`). */
    { name: "sector_num", kind: "u64", at: 8 },
  ],
  16,
);

/** The head of a table record; `count` u32 entries follow (copied raw, normally with bit 31). */
export const FvdTableJRecordCodec = defineStruct(
  "FVD table journal record",
  "le",
  [
    { name: "type", kind: "u32", at: 0 },
    { name: "first_chunk", kind: "u32", at: 4 },
    { name: "count", kind: "u32", at: 8 },
  ],
  12,
);

/** Entries of a table-only journal sector: (512 - 12) / 4. */
export const FVD_TABLE_JRECORDS_PER_SECTOR = 125;
/** Entries of a mixed sector (table record + bitmap record): (512 - 12 - 16) / 4. */
export const FVD_MIXED_JRECORDS_PER_SECTOR = 121;

// ---- create-time formulas (spec §2, §3.10) ----

/** `ROUND_UP(n, unit)`. */
export function fvdRoundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** Bitmap bytes before rounding, for `baseSize` bytes at `blockSize` bytes per bit. */
export function fvdBitmapBytes(baseSize: number, blockSize: number): number {
  return Math.ceil(Math.ceil(baseSize / blockSize) / 8);
}

/** `bitmap_size`: the bitmap rounded up to 4096. */
export function fvdBitmapSize(baseSize: number, blockSize: number): number {
  return fvdRoundUp(fvdBitmapBytes(baseSize, blockSize), FVD_REGION_ALIGN);
}

/** The largest bitmap the automatic block size allows (`MODERATE_BITMAP_SIZE`). */
export const FVD_MODERATE_BITMAP_SIZE = 4 * 1024 * 1024;

/** The default `block_size`: the smallest 512·2^k whose bitmap (unrounded) is at most 4 MiB. */
export function fvdDefaultBlockSize(baseSize: number): number {
  let block = FVD_SECTOR;
  while (fvdBitmapBytes(baseSize, block) > FVD_MODERATE_BITMAP_SIZE) block *= 2;
  return block;
}

/** `table_size`: ROUND_UP(4 × entries, 4096). */
export function fvdTableSize(entries: number): number {
  return fvdRoundUp(4 * entries, FVD_REGION_ALIGN);
}

/** `calc_min_journal_size`: ceil(entries / 121) sectors. */
export function fvdMinJournalSize(entries: number): number {
  return Math.ceil(entries / FVD_MIXED_JRECORDS_PER_SECTOR) * FVD_SECTOR;
}

/** Default journal size when a bitmap or table exists. */
export const FVD_DEFAULT_JOURNAL_SIZE = 16 * 1024 * 1024;
/** Default chunk size of compact images. */
export const FVD_DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Default storage growth step. */
export const FVD_DEFAULT_STORAGE_GROW_UNIT = 100 * 1024 * 1024;
/** Fixed prefetch/copy-on-read values create writes when a base image is given (spec §3.10). */
export const FVD_CREATE_PREFETCH_DEFAULTS = {
  max_outstanding_copy_on_read_data: 2_000_000,
  num_prefetch_slots: 2,
  prefetch_read_throughput_measure_time: 100,
  prefetch_write_throughput_measure_time: 100,
  prefetch_perf_calc_alpha: 80,
  prefetch_min_read_throughput: 5120,
  prefetch_min_write_throughput: 5120,
  prefetch_max_read_throughput: 1_000_000_000,
  prefetch_max_write_throughput: 1_000_000_000,
  prefetch_throttle_time: 30000,
  unit_of_PrefetchProfileEntry_len: 4096,
  profile_directed_prefetch_start_delay: -1,
} as const;

// ---- safety limits of this implementation (not of the format) ----

/** Largest bitmap accepted: 16 × the 4 MiB create produces. */
export const FVD_MAX_BITMAP_SIZE = 64 * 1024 * 1024;
/** Largest lookup table accepted (16 Mi chunks: 16 TiB at 1 MiB chunks). */
export const FVD_MAX_TABLE_SIZE = 64 * 1024 * 1024;
/** Largest journal accepted. */
export const FVD_MAX_JOURNAL_SIZE = 256 * 1024 * 1024;
/** Largest chunk or block size accepted. */
export const FVD_MAX_UNIT = 1 << 30;

/**
 * Where this implementation deliberately differs from the original code (the spec's "Project
 * decisions"), shown by `vdisk info`.
 */
export const FVD_PROJECT_DECISIONS: readonly string[] = [
  "add_storage_cmd is kept and shown but never executed; files grow by storage_grow_unit",
  "a flush separates data writes from their journal records: records are written at the caller's flush, after the data is durable",
  "copy-on-read is an open option (copy-on-read=on), not the header flag; prefetch is the explicit flatten operation (rebase -b \"\"); prefetch fields are kept, not acted on",
  "resize grows the lookup table (relocating the journal inside the metadata area) or refuses; shrinking clears entries past the end and empties the journal",
  "a read-only open after an unclean shutdown replays the journal in memory",
  "copy-on-read writes are journaled like guest writes (the original never journaled them)",
  "a read-write open after an unclean shutdown trims a compact image's data past the last mapped chunk, so a reused chunk never shows old data",
];
