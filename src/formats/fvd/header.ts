/**
 * Decoding, encoding and validating the FVD header, and the geometry derived from it: every
 * region bounded and in order before anything sized by a header field is allocated.
 * @module
 */
import { CorruptImageError, LimitExceededError, formatBytes } from "../../errors.js";
import {
  FVD_HEADER_FIELDS,
  FVD_HEADER_SIZE,
  FVD_MAX_BITMAP_SIZE,
  FVD_MAX_JOURNAL_SIZE,
  FVD_MAX_TABLE_SIZE,
  FVD_MAX_UNIT,
  FVD_SECTOR,
  FvdHeaderCodec,
  fvdBitmapBytes,
  fvdIsSignedField,
  fvdString,
  fvdTableSize,
  type FvdHeader,
} from "./layout.js";

const FORMAT = "fvd";

function corrupt(message: string, field?: string): CorruptImageError {
  return new CorruptImageError(`Cannot open fvd image: ${message}`, {
    format: FORMAT,
    structure: field ? `header field ${field}` : "header",
    fileOffset: field ? FvdHeaderCodec.offsetOf(field as keyof FvdHeader & string) : 0,
  });
}

/**
 * Decodes the 4336-byte header at the start of `buf`. Every `int64_t` field must lie in
 * [0, 2^53) (a `CorruptImageError` naming the field otherwise); `int32_t` fields are returned
 * signed.
 */
export function decodeFvdHeader(buf: Uint8Array): FvdHeader {
  const view = new DataView(buf.buffer, buf.byteOffset, FVD_HEADER_SIZE);
  for (const f of FVD_HEADER_FIELDS) {
    if (f.kind !== "u64") continue;
    const at = FvdHeaderCodec.offsetOf(f.name);
    const hi = view.getInt32(at + 4, true);
    if (hi < 0 || hi > 0x1fffff) {
      const v = view.getBigInt64(at, true);
      throw corrupt(`${f.name} = ${v} is out of range`, f.name);
    }
  }
  const h = FvdHeaderCodec.decode(buf) as Record<string, number | string>;
  for (const f of FVD_HEADER_FIELDS) {
    if (fvdIsSignedField(f.name, f.kind === "u32" ? 4 : 0)) h[f.name] = (h[f.name] as number) | 0;
  }
  return h as FvdHeader;
}

/** Encodes `h` into a new 4336-byte buffer (signed fields as two's complement). */
export function encodeFvdHeader(h: FvdHeader): Uint8Array {
  const copy = { ...h } as Record<string, number | string>;
  for (const f of FVD_HEADER_FIELDS) {
    if (fvdIsSignedField(f.name, f.kind === "u32" ? 4 : 0)) copy[f.name] = (copy[f.name] as number) >>> 0;
  }
  return FvdHeaderCodec.encode(copy as FvdHeader);
}

/** Pads a C string to its `char[]` field (what `pstrcpy` leaves: the text, then NULs). */
export function fvdField(text: string, length: number): string {
  if (text.length >= length) throw new RangeError(`'${text.slice(0, 40)}…' is longer than ${length - 1} characters`);
  return text + "\0".repeat(length - text.length);
}

/** The derived, validated geometry of an open image. */
export interface FvdGeometry {
  readonly size: number;
  /** Where data offset 0 lives in the data storage (metadata_size, or 0 with a data file). */
  readonly dataBase: number;
  /** The base image and bitmap are in use (`all_data_in_fvd_img` is 0). */
  readonly usesBitmap: boolean;
  readonly baseSize: number;
  readonly blockSize: number;
  /** Bits in use: ceil(baseSize / blockSize). */
  readonly blocks: number;
  readonly bitmapOffset: number;
  readonly bitmapSize: number;
  readonly compact: boolean;
  readonly chunkSize: number;
  /** Table entries: ceil(size / chunkSize). */
  readonly entries: number;
  readonly tableOffset: number;
  /** Bytes of the table region: ROUND_UP(4 × entries, 4096). */
  readonly tableRegion: number;
  readonly journalOffset: number;
  readonly journalSize: number;
  /** storage_grow_unit clamped to [chunk_size, 4 GiB]. */
  readonly growUnit: number;
}

/** Largest storage growth step this implementation uses (the header may ask for more). */
const MAX_GROW_UNIT = 4 * 1024 * 1024 * 1024;

function check(ok: boolean, message: string, field?: string): void {
  if (!ok) throw corrupt(message, field);
}

/**
 * Validates the header's regions against each other, the limits and `fileSize` (the metadata
 * file's length) and returns the geometry. `hasDataFile` says the data lives in another file.
 */
export function fvdGeometry(h: FvdHeader, fileSize: number, hasDataFile: boolean): FvdGeometry {
  const size = h.virtual_disk_size;
  check(size % FVD_SECTOR === 0, `virtual_disk_size ${size} is not a multiple of 512`, "virtual_disk_size");
  const meta = h.metadata_size;
  check(meta >= FVD_HEADER_SIZE && meta % FVD_SECTOR === 0, `metadata_size ${meta} is below the header or not a multiple of 512`, "metadata_size");
  check(
    meta <= fileSize,
    `the file of ${fileSize} bytes is shorter than its metadata (metadata_size ${meta})`,
    "metadata_size",
  );
  const dataBase = hasDataFile ? 0 : meta;
  check(dataBase + size <= Number.MAX_SAFE_INTEGER, `virtual_disk_size ${size} is too large`, "virtual_disk_size");
  const regions: Array<[string, number, number]> = [];
  const usesBitmap = h.all_data_in_fvd_img === 0;
  let blocks = 0;
  let blockSize = h.block_size;
  if (usesBitmap) {
    check(
      blockSize >= FVD_SECTOR && blockSize % FVD_SECTOR === 0 && blockSize <= FVD_MAX_UNIT,
      `block_size ${blockSize} is not a multiple of 512 between 512 and 1 GiB`,
      "block_size",
    );
    blocks = Math.ceil(h.base_img_size / blockSize);
    if (blocks > 0) {
      const need = fvdBitmapBytes(h.base_img_size, blockSize);
      check(h.bitmap_size >= need, `bitmap_size ${h.bitmap_size} is below the ${need} bytes that base_img_size ${h.base_img_size} needs`, "bitmap_size");
      if (h.bitmap_size > FVD_MAX_BITMAP_SIZE) {
        throw new LimitExceededError(
          `Cannot open fvd image: bitmap of ${formatBytes(h.bitmap_size)} exceeds the limit of ${formatBytes(FVD_MAX_BITMAP_SIZE)}`,
          { format: FORMAT, structure: "bitmap" },
        );
      }
      regions.push(["bitmap", h.bitmap_offset, h.bitmap_size]);
    }
  } else {
    blockSize = blockSize > 0 ? blockSize : FVD_SECTOR;
  }
  const compact = h.compact_image !== 0;
  let entries = 0;
  let tableRegion = 0;
  if (compact) {
    const c = h.chunk_size;
    check(c >= FVD_SECTOR && c % FVD_SECTOR === 0 && c <= FVD_MAX_UNIT, `chunk_size ${c} is not a multiple of 512 between 512 and 1 GiB`, "chunk_size");
    entries = Math.ceil(size / c);
    tableRegion = fvdTableSize(entries);
    if (tableRegion > FVD_MAX_TABLE_SIZE) {
      throw new LimitExceededError(
        `Cannot open fvd image: lookup table of ${formatBytes(tableRegion)} exceeds the limit of ${formatBytes(FVD_MAX_TABLE_SIZE)}`,
        { format: FORMAT, structure: "table" },
      );
    }
    regions.push(["table", h.table_offset, tableRegion]);
  }
  const js = h.journal_size;
  if (js > 0) {
    check(js % FVD_SECTOR === 0, `journal_size ${js} is not a multiple of 512`, "journal_size");
    if (js > FVD_MAX_JOURNAL_SIZE) {
      throw new LimitExceededError(
        `Cannot open fvd image: journal of ${formatBytes(js)} exceeds the limit of ${formatBytes(FVD_MAX_JOURNAL_SIZE)}`,
        { format: FORMAT, structure: "journal" },
      );
    }
    regions.push(["journal", h.journal_offset, js]);
  }
  for (const [name, off, len] of regions) {
    check(
      off >= FVD_HEADER_SIZE && off + len <= meta,
      `the ${name} region [${off}, ${off + len}) lies outside the metadata area [${FVD_HEADER_SIZE}, ${meta})`,
      `${name}_offset`,
    );
  }
  const sorted = [...regions].sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < sorted.length; i++) {
    const [pn, po, pl] = sorted[i - 1];
    check(sorted[i][1] >= po + pl, `the ${pn} region [${po}, ${po + pl}) overlaps the ${sorted[i][0]} region at ${sorted[i][1]}`, `${sorted[i][0]}_offset`);
  }
  const chunk = compact ? h.chunk_size : 0;
  return {
    size,
    dataBase,
    usesBitmap,
    baseSize: usesBitmap ? h.base_img_size : 0,
    blockSize,
    blocks,
    bitmapOffset: h.bitmap_offset,
    bitmapSize: usesBitmap ? h.bitmap_size : 0,
    compact,
    chunkSize: chunk,
    entries,
    tableOffset: h.table_offset,
    tableRegion,
    journalOffset: h.journal_offset,
    journalSize: js,
    growUnit: compact ? Math.max(chunk, Math.min(h.storage_grow_unit, MAX_GROW_UNIT)) : 0,
  };
}

/** Header strings a reader uses, trimmed at their NUL. */
export function fvdNames(h: FvdHeader): { baseImg: string; baseImgFmt: string; dataFile: string; dataFileFmt: string; addStorageCmd: string } {
  return {
    baseImg: fvdString(h.base_img),
    baseImgFmt: fvdString(h.base_img_fmt),
    dataFile: fvdString(h.data_file),
    dataFileFmt: fvdString(h.data_file_fmt),
    addStorageCmd: fvdString(h.add_storage_cmd),
  };
}

