/**
 * Journal replay after an unclean shutdown (spec §2.4): every sector, in order, applied to the
 * in-memory bitmap and table. Stale records from before earlier recycles are applied too; that
 * is safe because bits only go 0→1 and a table entry never changes once assigned.
 * @module
 */
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import type { FvdBitmap } from "./bitmap.js";
import { parseFvdJournalSector } from "./journal.js";
import { FVD_EMPTY_TABLE, FVD_MAX_CHUNK_INDEX, FVD_SECTOR, FVD_DIRTY_TABLE } from "./layout.js";
import type { FvdTable } from "./table.js";

/** Journal bytes read per I/O. */
const PIECE = 1 << 20;

/** What a replay found. */
export interface FvdReplayResult {
  bitmapRecords: number;
  tableRecords: number;
}

/**
 * Reads the journal at `[offset, offset+size)` of `file` and applies it to `bitmap` (when the
 * image uses one) and `table` (compact images). Throws `CorruptImageError` for a table record
 * outside the table or holding an impossible index; warns about sectors that hold no records.
 */
export async function replayFvdJournal(
  file: IoBackend,
  offset: number,
  size: number,
  bitmap: FvdBitmap | undefined,
  table: FvdTable | undefined,
  warn: (message: string) => void,
): Promise<FvdReplayResult> {
  const result: FvdReplayResult = { bitmapRecords: 0, tableRecords: 0 };
  let odd = 0;
  let strayTables = 0;
  const sectors = Math.floor(size / FVD_SECTOR);
  for (let first = 0; first < sectors; first += PIECE / FVD_SECTOR) {
    const n = Math.min(PIECE / FVD_SECTOR, sectors - first);
    const buf = await readExact(file, offset + first * FVD_SECTOR, n * FVD_SECTOR, "journal", "fvd");
    for (let s = 0; s < n; s++) {
      const index = first + s;
      const bad = parseFvdJournalSector(buf.subarray(s * FVD_SECTOR, (s + 1) * FVD_SECTOR), offset, index, {
        bitmap(sectorNum, nb) {
          result.bitmapRecords++;
          if (!bitmap) return;
          const start = sectorNum * FVD_SECTOR;
          if (start >= bitmap.baseSize) return;
          bitmap.setRange(start, Math.min(bitmap.baseSize, (sectorNum + nb) * FVD_SECTOR));
        },
        table(firstChunk, entries) {
          result.tableRecords++;
          if (!table) {
            strayTables++;
            return;
          }
          const where = { format: "fvd", structure: "journal", fileOffset: offset + index * FVD_SECTOR };
          if (firstChunk + entries.length > table.length) {
            throw new CorruptImageError(
              `Cannot open fvd image: journal sector ${index} updates table entries ${firstChunk}..${firstChunk + entries.length - 1} of a ${table.length}-entry table`,
              where,
            );
          }
          for (let k = 0; k < entries.length; k++) {
            const v = entries[k];
            if (v !== FVD_EMPTY_TABLE && ((v & ~FVD_DIRTY_TABLE) >>> 0) > FVD_MAX_CHUNK_INDEX) {
              throw new CorruptImageError(
                `Cannot open fvd image: journal sector ${index} maps chunk ${firstChunk + k} to the impossible index 0x${v.toString(16)}`,
                where,
              );
            }
            table.setClean(firstChunk + k, v);
          }
        },
      });
      if (bad !== undefined) odd++;
    }
  }
  if (odd > 0) warn(`fvd journal: ${odd} sector(s) start with an unknown record type and were skipped`);
  if (strayTables > 0) warn(`fvd journal: ${strayTables} table record(s) in an image without a lookup table were ignored`);
  return result;
}
