/**
 * Size measurement for FVD targets (qemu-img 7.2 has no fvd; vdisk's own bound): the metadata
 * regions create writes (header, copy-on-write bitmap, lookup table, journal), then the data
 * storage. A plain image's storage is the whole disk as soon as anything is written; a compact
 * image's grows by whole chunks, in `storage_grow_unit` steps. With `backing_file` the bitmap
 * is sized for a backing image as large as the disk (the largest it can be).
 * @module
 */
import { requiredUnits, type MeasureInput, type MeasureResult } from "../../core/measure.js";
import {
  FVD_DEFAULT_CHUNK_SIZE,
  FVD_DEFAULT_JOURNAL_SIZE,
  FVD_DEFAULT_STORAGE_GROW_UNIT,
  FVD_HEADER_REGION,
  FVD_REGION_ALIGN,
  FVD_SECTOR,
  fvdBitmapSize,
  fvdDefaultBlockSize,
  fvdMinJournalSize,
  fvdRoundUp,
  fvdTableSize,
} from "./layout.js";

/** The most the driver grows a compact image's storage by in one step. */
const MAX_GROW_UNIT = 2 ** 32;

function num(v: string | number | boolean | undefined): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/** measure for fvd: `required` bounds a convert, `fullyAllocated` a fully written image. */
export function measureFvd(input: MeasureInput): MeasureResult {
  const o = input.options;
  const virt = fvdRoundUp(input.size > 0 ? input.size : 4096, FVD_SECTOR);
  const compact = o.compact_image === true;
  const hasBase = input.backingFile !== undefined;
  const chunkOption = num(o.chunk_size) > 0 ? num(o.chunk_size) : FVD_DEFAULT_CHUNK_SIZE;
  const chunk = compact ? fvdRoundUp(chunkOption, FVD_REGION_ALIGN) : 0;
  const blockOption = num(o.block_size);
  const block = hasBase ? (blockOption > 0 ? fvdRoundUp(blockOption, FVD_SECTOR) : fvdDefaultBlockSize(virt)) : 0;
  const bitmapSize = hasBase ? fvdBitmapSize(virt, block) : 0;
  const entries = compact ? Math.ceil(virt / chunk) : 0;
  const tableSize = compact ? fvdTableSize(entries) : 0;
  let journal = 0;
  if (bitmapSize > 0 || tableSize > 0) {
    journal = num(o.journal_size) > 0 ? num(o.journal_size) : FVD_DEFAULT_JOURNAL_SIZE;
    if (compact) journal = Math.max(journal, fvdMinJournalSize(entries));
    journal = fvdRoundUp(journal, FVD_REGION_ALIGN);
  }
  const metadata = FVD_HEADER_REGION + bitmapSize + tableSize + journal;
  if (!compact) {
    const anyData = input.allocated === undefined ? false : hasBase || requiredUnits(input, FVD_SECTOR) > 0;
    return { required: metadata + (anyData ? virt : 0), fullyAllocated: metadata + virt };
  }
  const growOption = num(o.storage_grow_unit) > 0 ? num(o.storage_grow_unit) : FVD_DEFAULT_STORAGE_GROW_UNIT;
  const grow = Math.max(chunk, Math.min(growOption, MAX_GROW_UNIT));
  // Each growth step reaches at least `grow` past the chunks already in use.
  const storage = (chunks: number): number =>
    chunks === 0 ? 0 : Math.max(chunks * chunk, (chunks - 1) * chunk + grow);
  return {
    required: metadata + storage(requiredUnits({ ...input, size: virt }, chunk)),
    fullyAllocated: metadata + storage(entries),
  };
}
