/**
 * Creating an FVD image (spec §2 formulas, §3.10 options, §3.8 detect_sparse_hole): the header
 * region, a zeroed bitmap, a table of 0xFF and a zeroed journal, all written explicitly.
 * @module
 */
import type { CreateContext, CreateOptionSpec } from "../../core/format.js";
import { ImageError, UnsupportedFeatureError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import { FvdBitmap } from "./bitmap.js";
import { encodeFvdHeader, fvdField } from "./header.js";
import {
  FVD_CREATE_PREFETCH_DEFAULTS,
  FVD_DEFAULT_CHUNK_SIZE,
  FVD_DEFAULT_JOURNAL_SIZE,
  FVD_DEFAULT_STORAGE_GROW_UNIT,
  FVD_HEADER_FIELDS,
  FVD_HEADER_REGION,
  FVD_MAGIC,
  FVD_MAX_UNIT,
  FVD_REGION_ALIGN,
  FVD_SECTOR,
  FVD_VERSION,
  fvdBitmapSize,
  fvdDefaultBlockSize,
  fvdMinJournalSize,
  fvdRoundUp,
  fvdTableSize,
  type FvdHeader,
} from "./layout.js";

/** `qemu-img create -f fvd -o …` options (spec §3.10); backing via `-b`/`-F`. */
export const FVD_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "compact_image", type: "bool", help: "Use a lookup table so the file grows only with written data", defaultText: "off" },
  { name: "chunk_size", type: "size", help: "Table granularity of compact images (rounded up to 4 KiB)", defaultText: "1M" },
  { name: "block_size", type: "size", help: "Bytes per copy-on-write bitmap bit (rounded up to 512)", defaultText: "auto: bitmap <= 4 MiB" },
  { name: "journal_size", type: "size", help: "Metadata journal size", defaultText: "16M when a bitmap or table exists" },
  { name: "storage_grow_unit", type: "size", help: "Step by which a compact image's file grows (at least chunk_size)", defaultText: "100M" },
  { name: "add_storage_cmd", type: "string", help: "Recorded only: vdisk never runs it" },
  { name: "data_file", type: "string", help: "Keep guest data in this separate (raw) file" },
  { name: "data_file_fmt", type: "string", help: "Format of data_file (only raw is supported)" },
  { name: "copy_on_read", type: "bool", help: "Record copy-on-read in the header (needs a base image)", defaultText: "off" },
  { name: "prefetch_start_delay", type: "number", help: "Seconds before prefetching starts (recorded; <= 0 disables)", defaultText: "-1" },
  { name: "detect_sparse_hole", type: "size", help: "Scan the base in units of this size and mark zero units as local (not with compact_image)", defaultText: "0 (off)" },
];

/** Bytes written per I/O when filling regions. */
const PIECE = 1 << 20;

function num(v: string | number | boolean | undefined): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function str(v: string | number | boolean | undefined): string {
  return typeof v === "string" ? v : "";
}

function fail(message: string): never {
  throw new ImageError("ERR_INVALID_OPTION", `Cannot create fvd image: ${message}`, { format: "fvd" });
}

async function fill(file: IoBackend, offset: number, length: number, byte: number): Promise<void> {
  const buf = new Uint8Array(Math.min(length, PIECE)).fill(byte);
  for (let pos = 0; pos < length; pos += PIECE) await file.write(offset + pos, buf.subarray(0, Math.min(PIECE, length - pos)));
}

/** A header with every field zero, from the one field list. */
export function emptyFvdHeader(): FvdHeader {
  const h: Record<string, number | string> = {};
  for (const f of FVD_HEADER_FIELDS) h[f.name] = f.kind === "ascii" ? "\0".repeat(f.length) : 0;
  return h as FvdHeader;
}

function text(name: string, value: string, length: number): string {
  try {
    return fvdField(value, length);
  } catch {
    return fail(`${name} '${value.slice(0, 40)}…' is longer than ${length - 1} characters`);
  }
}

/** Writes a new FVD image into `ctx.file`. */
export async function createFvdImage(ctx: CreateContext): Promise<void> {
  const o = ctx.options;
  const virt = fvdRoundUp(ctx.size > 0 ? ctx.size : 4096, FVD_SECTOR);
  const base = ctx.backing;
  const compact = o.compact_image === true;
  const sparseUnit = num(o.detect_sparse_hole);
  if (sparseUnit > 0 && !base) fail("detect_sparse_hole needs a base image");
  if (sparseUnit > 0 && compact) fail("detect_sparse_hole cannot be combined with compact_image");
  const chunk = compact ? fvdRoundUp(num(o.chunk_size) > 0 ? num(o.chunk_size) : FVD_DEFAULT_CHUNK_SIZE, FVD_REGION_ALIGN) : 0;
  if (chunk > FVD_MAX_UNIT) fail(`chunk_size ${chunk} exceeds 1 GiB`);
  const baseSize = base ? fvdRoundUp(Math.min(virt, base.size), FVD_SECTOR) : 0;
  const givenBlock = num(o.block_size);
  const block = base ? (givenBlock > 0 ? fvdRoundUp(givenBlock, FVD_SECTOR) : fvdDefaultBlockSize(baseSize)) : 0;
  if (block > FVD_MAX_UNIT) fail(`block_size ${block} exceeds 1 GiB`);
  if (compact && base && chunk % block !== 0) {
    fail(`chunk_size ${chunk} must be a multiple of block_size ${block} in a compact image with a base image`);
  }
  const bitmapSize = base ? fvdBitmapSize(baseSize, block) : 0;
  const entries = compact ? Math.ceil(virt / chunk) : 0;
  const tableSize = compact ? fvdTableSize(entries) : 0;
  let journal = 0;
  if (bitmapSize > 0 || tableSize > 0) {
    journal = num(o.journal_size) > 0 ? num(o.journal_size) : FVD_DEFAULT_JOURNAL_SIZE;
    if (compact) journal = Math.max(journal, fvdMinJournalSize(entries));
    journal = fvdRoundUp(journal, FVD_REGION_ALIGN);
  }
  const dataFile = str(o.data_file);
  const dataFmt = str(o.data_file_fmt);
  if (dataFmt && dataFmt !== "raw") fail(`data_file_fmt '${dataFmt}' is not supported (only raw)`);
  if (dataFmt && !dataFile) fail("data_file_fmt needs data_file");
  if (o.copy_on_read === true && !base) ctx.warn("fvd: copy_on_read without a base image is ignored");

  const h = emptyFvdHeader();
  h.magic = FVD_MAGIC;
  h.version = FVD_VERSION;
  h.all_data_in_fvd_img = base ? 0 : 1;
  h.virtual_disk_size = virt;
  h.metadata_size = FVD_HEADER_REGION + bitmapSize + tableSize + journal;
  h.compact_image = compact ? 1 : 0;
  h.table_offset = compact ? FVD_HEADER_REGION + bitmapSize : 0;
  h.chunk_size = chunk;
  h.storage_grow_unit = compact ? Math.max(chunk, num(o.storage_grow_unit) > 0 ? num(o.storage_grow_unit) : FVD_DEFAULT_STORAGE_GROW_UNIT) : 0;
  h.add_storage_cmd = text("add_storage_cmd", str(o.add_storage_cmd), 2048);
  h.data_file = text("data_file", dataFile, 1024);
  h.data_file_fmt = text("data_file_fmt", dataFmt, 16);
  h.journal_offset = FVD_HEADER_REGION + bitmapSize + tableSize;
  h.journal_size = journal;
  h.clean_shutdown = 1;
  h.need_zero_init = sparseUnit > 0 ? 1 : 0;
  if (base) {
    h.base_img = text("backing file name", base.name, 1024);
    h.base_img_fmt = text("backing format", base.format ?? "", 16);
    h.base_img_size = baseSize;
    h.bitmap_offset = FVD_HEADER_REGION;
    h.bitmap_size = bitmapSize;
    h.block_size = block;
    h.copy_on_read = o.copy_on_read === true ? 1 : 0;
    Object.assign(h, FVD_CREATE_PREFETCH_DEFAULTS);
    h.bytes_per_prefetch = fvdRoundUp(1024 * 1024, block);
    const delay = num(o.prefetch_start_delay);
    h.prefetch_start_delay = delay > 0 ? Math.min(Math.floor(delay), 0x7fffffff) : -1;
  }

  const file = ctx.file;
  await file.truncate(0);
  const region = new Uint8Array(FVD_HEADER_REGION);
  region.set(encodeFvdHeader(h));
  await file.write(0, region);
  if (bitmapSize > 0) await fill(file, FVD_HEADER_REGION, bitmapSize, 0);
  if (tableSize > 0) await fill(file, h.table_offset, tableSize, 0xff);
  if (journal > 0) await fill(file, h.journal_offset, journal, 0);
  if (sparseUnit > 0 && base) await markSparseHoles(ctx, h, sparseUnit);
  if (dataFile) {
    const df = await ctx.openFile({ name: dataFile, relativeTo: file, writable: true, create: true, purpose: "data-file" });
    try {
      await df.truncate(0);
      await df.flush();
    } finally {
      await df.close();
    }
  }
  await file.flush();
}

/**
 * detect_sparse_hole (spec §3.8): reads the base in units of `unit` bytes (rounded up to whole
 * blocks) and sets the bits of every all-zero unit, so those blocks read from the new image
 * (zeros) instead of the base. Only whole units are scanned. Needs a raw base: the scan reads
 * the base file's bytes.
 */
async function markSparseHoles(ctx: CreateContext, h: FvdHeader, unit: number): Promise<void> {
  const base = ctx.backing!;
  if (base.format !== undefined && base.format !== "raw") {
    throw new UnsupportedFeatureError(`Cannot create fvd image: detect_sparse_hole needs a raw base image, not ${base.format}`, { format: "fvd" });
  }
  const step = Math.max(h.block_size, fvdRoundUp(unit, h.block_size));
  const bitmap = new FvdBitmap(new Uint8Array(h.bitmap_size), h.block_size, h.base_img_size);
  const io = await ctx.openFile({ name: base.name, relativeTo: ctx.file, writable: false, purpose: "backing" });
  try {
    const scanEnd = Math.min(await io.size(), h.base_img_size);
    const piece = Math.max(step, Math.floor(PIECE / step) * step);
    for (let pos = 0; pos + step <= scanEnd; pos += piece) {
      const len = Math.min(piece, Math.floor((scanEnd - pos) / step) * step);
      const buf = await readZeroPadded(io, pos, len);
      for (let at = 0; at < len; at += step) {
        if (ctx.kernel.findNonZero(buf, at, at + step) === at + step) bitmap.setRange(pos + at, pos + at + step);
      }
    }
  } finally {
    await io.close();
  }
  await ctx.file.write(h.bitmap_offset, bitmap.bits);
}
