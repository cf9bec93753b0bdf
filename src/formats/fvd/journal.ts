/**
 * The FVD journal (spec §2.4): 512-byte sectors of little-endian records, each sector ended by
 * a u32 0 or by its end. Building the sectors one metadata change produces, and parsing them
 * for replay.
 * @module
 */
import { CorruptImageError } from "../../errors.js";
import {
  FVD_BITMAP_JRECORD,
  FVD_MIXED_JRECORDS_PER_SECTOR,
  FVD_SECTOR,
  FVD_TABLE_JRECORD,
  FVD_TABLE_JRECORDS_PER_SECTOR,
  FvdBitmapJRecordCodec,
  FvdTableJRecordCodec,
} from "./layout.js";

const BITMAP_REC = FvdBitmapJRecordCodec.size;
const TABLE_HEAD = FvdTableJRecordCodec.size;

/** A guest byte range `[start, end)` whose blocks move into the FVD image. */
export interface FvdByteRange {
  start: number;
  end: number;
}

function putBitmapRecord(sector: Uint8Array, at: number, r: FvdByteRange): number {
  const first = Math.floor(r.start / FVD_SECTOR);
  const last = Math.ceil(r.end / FVD_SECTOR);
  FvdBitmapJRecordCodec.encode({ type: FVD_BITMAP_JRECORD, nb_sectors: last - first, sector_num: first }, sector, at);
  return at + BITMAP_REC;
}

function putTableRecord(sector: Uint8Array, at: number, first: number, entries: Uint32Array): number {
  FvdTableJRecordCodec.encode({ type: FVD_TABLE_JRECORD, first_chunk: first, count: entries.length }, sector, at);
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  for (let k = 0; k < entries.length; k++) view.setUint32(at + TABLE_HEAD + 4 * k, entries[k], true);
  return at + TABLE_HEAD + 4 * entries.length;
}

/**
 * The journal sectors for one metadata change:
 * - `bits`: the range whose blocks move into the image (undefined when no bit changes);
 * - `firstChunk`/`entries`: table entries that changed (raw, as in memory, normally with bit 31),
 *   consecutive from `firstChunk`; `chunkSize` maps them to guest bytes.
 * Bitmap only: one sector, one BITMAP record. Table only: TABLE records of up to 125 entries per
 * sector. Both: up to 121 entries per sector, each followed by a BITMAP record for exactly the
 * part of `bits` its chunks cover (a part of `bits` before the first changed chunk gets a
 * bitmap-only sector first). Unused sector bytes are zero (the terminator included).
 */
export function buildFvdJournalSectors(
  bits: FvdByteRange | undefined,
  firstChunk: number,
  entries: Uint32Array,
  chunkSize: number,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (entries.length === 0) {
    if (bits && bits.end > bits.start) {
      const s = new Uint8Array(FVD_SECTOR);
      putBitmapRecord(s, 0, bits);
      out.push(s);
    }
    return out;
  }
  const spanStart = firstChunk * chunkSize;
  if (bits && bits.start < spanStart && bits.end > bits.start) {
    const s = new Uint8Array(FVD_SECTOR);
    putBitmapRecord(s, 0, { start: bits.start, end: Math.min(bits.end, spanStart) });
    out.push(s);
  }
  const mixed = !!bits && bits.end > Math.max(bits.start, spanStart);
  const per = mixed ? FVD_MIXED_JRECORDS_PER_SECTOR : FVD_TABLE_JRECORDS_PER_SECTOR;
  for (let k = 0; k < entries.length; k += per) {
    const n = Math.min(per, entries.length - k);
    const s = new Uint8Array(FVD_SECTOR);
    let at = putTableRecord(s, 0, firstChunk + k, entries.subarray(k, k + n));
    if (mixed && bits) {
      const gStart = Math.max(bits.start, (firstChunk + k) * chunkSize);
      const gEnd = Math.min(bits.end, (firstChunk + k + n) * chunkSize);
      if (gEnd > gStart) at = putBitmapRecord(s, at, { start: gStart, end: gEnd });
    }
    out.push(s);
  }
  return out;
}

/** What a journal sector says, delivered in record order. */
export interface FvdJournalVisitor {
  /** A BITMAP record: sectors `[sectorNum, sectorNum + nbSectors)`. */
  bitmap(sectorNum: number, nbSectors: number): void;
  /** A TABLE record: raw entries for chunks `first..first+entries.length-1`. */
  table(first: number, entries: Uint32Array): void;
}

/**
 * Parses one 512-byte sector. Stops at a 0 type, at the sector's end, or at a record type that
 * is neither BITMAP nor TABLE (returned, so the caller can warn: such bytes are not records).
 * A TABLE record that does not fit in the sector is corruption.
 */
export function parseFvdJournalSector(
  sector: Uint8Array,
  journalOffset: number,
  index: number,
  visit: FvdJournalVisitor,
): number | undefined {
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  let at = 0;
  while (at + 4 <= FVD_SECTOR) {
    const type = view.getUint32(at, true);
    if (type === 0) return undefined;
    if (type === FVD_BITMAP_JRECORD) {
      if (at + BITMAP_REC > FVD_SECTOR) return type;
      const nb = view.getUint32(at + 4, true);
      const lo = view.getUint32(at + 8, true);
      const hi = view.getInt32(at + 12, true);
      if (hi < 0 || hi > 0x1fffff) {
        throw new CorruptImageError(`Cannot open fvd image: journal sector ${index} has a bitmap record for sector ${view.getBigInt64(at + 8, true)}`, {
          format: "fvd",
          structure: "journal",
          fileOffset: journalOffset + index * FVD_SECTOR + at,
        });
      }
      visit.bitmap(hi * 4294967296 + lo, nb);
      at += BITMAP_REC;
      continue;
    }
    if (type === FVD_TABLE_JRECORD) {
      if (at + TABLE_HEAD > FVD_SECTOR) return type;
      const first = view.getUint32(at + 4, true);
      const count = view.getUint32(at + 8, true);
      if (count > (FVD_SECTOR - at - TABLE_HEAD) / 4) {
        throw new CorruptImageError(
          `Cannot open fvd image: journal sector ${index} has a table record of ${count} entries, more than the sector holds`,
          { format: "fvd", structure: "journal", fileOffset: journalOffset + index * FVD_SECTOR + at },
        );
      }
      const entries = new Uint32Array(count);
      for (let k = 0; k < count; k++) entries[k] = view.getUint32(at + TABLE_HEAD + 4 * k, true);
      visit.table(first, entries);
      at += TABLE_HEAD + 4 * count;
      continue;
    }
    return type;
  }
  return undefined;
}
