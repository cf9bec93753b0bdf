/**
 * `check` for GOW (spec §4, a project decision): header fields in range, every map entry below
 * `allocated`, no slot used twice, every slot but the last complete in the file; slots below
 * `allocated` that no entry uses and an orphan tail past the last slot are leaks. `-r` trims the
 * orphan tail (the only leak that can be reclaimed: slots never move). `-r all` also repairs
 * entries at or past `allocated` (a crash kept the entry but lost the counter): it raises the
 * counter over the slots whose data the file holds and frees the entries of the others, and it
 * frees entries past the disk end.
 * @module
 */
import type { CheckResult, RepairMode } from "../../core/format.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { decodeGowHeader, readGowMap } from "./header.js";
import { GOW_BLOCK_SIZE, GOW_MAP_OFFSET, GowHeaderCodec, type GowVersionLayout } from "./layout.js";

/** Entries examined per map piece. */
const PIECE = 1 << 18;
/** Most problem lines reported individually. */
const MAX_MESSAGES = 100;

/** Checks the GOW image in `file` as it is on disk (the caller flushed first). */
export async function checkGowImage(
  file: IoBackend,
  layout: GowVersionLayout,
  format: string,
  repair?: RepairMode,
): Promise<CheckResult> {
  const r: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const note = (m: string): void => {
    if (r.messages.length < MAX_MESSAGES) r.messages.push(m);
  };
  let fileSize = await file.size();
  const h = decodeGowHeader(await readExact(file, 0, GowHeaderCodec.size, "header", format));
  if (h.size < 1 || h.size > layout.maxBlocks) {
    r.corruptions++;
    note(`ERROR header: disk size of ${h.size} blocks is outside 1..${layout.maxBlocks}`);
  }
  if (h.allocated > layout.maxBlocks) {
    r.corruptions++;
    note(`ERROR header: allocated count ${h.allocated} exceeds ${layout.maxBlocks}`);
    r.checkErrors++;
    return r;
  }
  if (fileSize < layout.headerBytes) {
    r.corruptions++;
    note(`ERROR header: the file of ${fileSize} bytes is shorter than the ${layout.headerBytes}-byte header`);
    return r;
  }
  if (repair === "all") await repairEntries(file, layout, format, h.size, h.allocated, fileSize, note, r);
  const allocated = repair === "all" ? decodeGowHeader(await readExact(file, 0, GowHeaderCodec.size, "header", format)).allocated : h.allocated;
  const used = new Uint8Array(Math.ceil(allocated / 8));
  let mapped = 0;
  for (let first = 0; first < layout.maxBlocks; first += PIECE) {
    const map = await readGowMap(file, first, Math.min(PIECE, layout.maxBlocks - first), format);
    // FREE is all ones: as signed words the scan compares small integers (-1).
    const words = new Int32Array(map.buffer, map.byteOffset, map.length);
    for (let i = 0; i < map.length; i++) {
      if (words[i] === -1) continue;
      const slot = map[i];
      const b = first + i;
      if (b >= h.size) {
        r.corruptions++;
        note(`ERROR map: block ${b} lies past the disk end (${h.size} blocks) but holds slot ${slot}`);
        continue;
      }
      if (slot >= allocated) {
        r.corruptions++;
        note(`ERROR map: block ${b} holds slot ${slot}, but only ${allocated} slots are allocated`);
        continue;
      }
      const bit = 1 << (slot & 7);
      if (used[slot >>> 3] & bit) {
        r.corruptions++;
        note(`ERROR map: slot ${slot} is used twice (again by block ${b})`);
        continue;
      }
      used[slot >>> 3] |= bit;
      mapped++;
    }
  }
  const base = layout.dataBase;
  // Every slot but the last must be complete; a short last slot reads zeros.
  if (allocated > 1 && fileSize < base + (allocated - 1) * GOW_BLOCK_SIZE) {
    r.corruptions++;
    note(`ERROR file: ${fileSize} bytes do not hold the ${allocated} allocated slots (data area at ${base})`);
  }
  for (let s = 0; s < allocated; s++) {
    if (!(used[s >>> 3] & (1 << (s & 7)))) {
      r.leaks++;
      note(`Leaked slot ${s}: no block uses it`);
    }
  }
  // Past the last slot: an orphan tail left by a crash between a slot's data and the counter.
  const dataEnd = base + allocated * GOW_BLOCK_SIZE;
  if (fileSize > dataEnd) {
    const tailBytes = fileSize - dataEnd;
    const tailSlots = Math.ceil(tailBytes / GOW_BLOCK_SIZE);
    if (repair) {
      await file.truncate(dataEnd);
      await file.flush();
      r.leaksFixed += tailSlots;
      note(`Repaired: trimmed an orphan tail of ${tailBytes} bytes past slot ${allocated}`);
      fileSize = dataEnd;
    } else {
      r.leaks += tailSlots;
      note(`Leaked orphan tail: ${tailBytes} bytes past the last allocated slot`);
    }
  }
  r.imageEndOffset = fileSize;
  r.totalClusters = h.size;
  r.allocatedClusters = mapped;
  return r;
}

/**
 * `-r all` for entries the counter does not cover: raises `allocated` over every slot whose
 * data starts inside the file (that data was flushed before the map entry was written, so only
 * the counter was lost), then frees the entries whose slot is still past it or whose block lies
 * past the disk end. Counter first, flushed, then the map: each step alone leaves leaks only.
 */
async function repairEntries(
  file: IoBackend,
  layout: GowVersionLayout,
  format: string,
  sizeBlocks: number,
  allocated: number,
  fileSize: number,
  note: (m: string) => void,
  r: CheckResult,
): Promise<void> {
  const inFile = Math.max(0, Math.min(layout.maxBlocks, Math.ceil((fileSize - layout.dataBase) / GOW_BLOCK_SIZE)));
  let raised = allocated;
  let covered = 0;
  const toFree: number[] = [];
  for (let first = 0; first < layout.maxBlocks; first += PIECE) {
    const map = await readGowMap(file, first, Math.min(PIECE, layout.maxBlocks - first), format);
    const words = new Int32Array(map.buffer, map.byteOffset, map.length);
    for (let i = 0; i < map.length; i++) {
      if (words[i] === -1) continue;
      const b = first + i;
      if (b >= sizeBlocks || map[i] >= inFile) toFree.push(b);
      else if (map[i] >= allocated) {
        covered++;
        raised = Math.max(raised, map[i] + 1);
      }
    }
  }
  if (raised > allocated) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, raised, true);
    await file.write(GowHeaderCodec.offsetOf("allocated"), b);
    await file.flush();
    note(`Repaired: raised the allocated count from ${allocated} to ${raised} (the counter write was lost)`);
  }
  const free = new Uint8Array(4).fill(0xff);
  for (const blk of toFree) {
    await file.write(GOW_MAP_OFFSET + 4 * blk, free);
    note(`Repaired: freed the map entry of block ${blk} (its slot is not in the file)`);
  }
  if (toFree.length > 0) await file.flush();
  r.corruptionsFixed += toFree.length + covered;
}
