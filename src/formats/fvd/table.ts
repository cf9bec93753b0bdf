/**
 * The lookup table of a compact image in memory: one u32 per chunk, EMPTY (all ones), or a
 * physical chunk index with bit 31 set while the change is not yet journaled. Tracks which
 * 4 KiB pages differ from the home copy in the file.
 * @module
 */
import { FvdDirtyPages } from "./dirty-pages.js";
import { FVD_DIRTY_TABLE, FVD_EMPTY_TABLE, FVD_REGION_ALIGN } from "./layout.js";

const ENTRIES_PER_PAGE = FVD_REGION_ALIGN / 4;

/** The table of an open compact image. */
export class FvdTable {
  /** Entries as kept in memory (bit 31 = not yet journaled). */
  raw: Uint32Array;
  private readonly dirtyPages = new FvdDirtyPages();

  constructor(raw: Uint32Array) {
    this.raw = raw;
  }

  get length(): number {
    return this.raw.length;
  }

  /** The physical index of chunk `i` without the dirty bit, or EMPTY. */
  get(i: number): number {
    const v = this.raw[i];
    return v === FVD_EMPTY_TABLE ? v : (v & ~FVD_DIRTY_TABLE) >>> 0;
  }

  /** Maps chunk `i` to physical index `p`, marked dirty (not yet journaled). */
  setDirty(i: number, p: number): void {
    this.raw[i] = (p | FVD_DIRTY_TABLE) >>> 0;
    this.dirtyPages.add(Math.floor(i / ENTRIES_PER_PAGE));
  }

  /** Stores `value` (EMPTY or an index; bit 31 is cleared) as replay does. */
  setClean(i: number, value: number): void {
    const v = value === FVD_EMPTY_TABLE ? value : (value & ~FVD_DIRTY_TABLE) >>> 0;
    if (this.raw[i] !== v) {
      this.raw[i] = v;
      this.dirtyPages.add(Math.floor(i / ENTRIES_PER_PAGE));
    }
  }

  /** Clears the dirty bit of chunk `i` (its journal record is written). */
  clearDirty(i: number): void {
    const v = this.raw[i];
    if (v !== FVD_EMPTY_TABLE) this.raw[i] = (v & ~FVD_DIRTY_TABLE) >>> 0;
  }

  /** Clears every dirty bit (home is about to be rewritten). */
  clearAllDirty(): void {
    const r = this.raw;
    for (let i = 0; i < r.length; i++) if (r[i] !== FVD_EMPTY_TABLE && r[i] & FVD_DIRTY_TABLE) r[i] = (r[i] & ~FVD_DIRTY_TABLE) >>> 0;
  }

  /** The largest physical index in use, or -1. */
  maxIndex(): number {
    let max = -1;
    for (let i = 0; i < this.raw.length; i++) {
      const p = this.get(i);
      if (p !== FVD_EMPTY_TABLE && p > max) max = p;
    }
    return max;
  }

  /** Resizes to `entries` (new entries EMPTY); marks the pages touched. */
  resize(entries: number): void {
    const next = new Uint32Array(entries).fill(FVD_EMPTY_TABLE);
    next.set(this.raw.subarray(0, Math.min(entries, this.raw.length)));
    const lo = Math.min(entries, this.raw.length);
    const hi = Math.max(entries, this.raw.length);
    this.dirtyPages.addRange(Math.floor(lo / ENTRIES_PER_PAGE), Math.ceil(hi / ENTRIES_PER_PAGE));
    this.raw = next;
  }

  /** Marks every page as differing from home (after a journal replay). */
  markAllDirty(): void {
    this.dirtyPages.addRange(0, Math.ceil(this.raw.length / ENTRIES_PER_PAGE));
  }

  /** Pages that differ from home, ascending; the set is emptied. */
  takeDirtyPages(): number[] {
    return this.dirtyPages.take();
  }

  /** True when some page differs from home. */
  get dirty(): boolean {
    return this.dirtyPages.any;
  }

  /**
   * The home bytes of page `page` (little-endian entries, dirty bits cleared, 0xFF past the
   * last entry), `length` bytes long (the region may end inside the page).
   */
  encodePage(page: number, length: number): Uint8Array {
    const out = new Uint8Array(length).fill(0xff);
    const view = new DataView(out.buffer);
    const first = page * ENTRIES_PER_PAGE;
    const n = Math.min(Math.floor(length / 4), this.raw.length - first);
    for (let k = 0; k < n; k++) view.setUint32(4 * k, this.get(first + k), true);
    return out;
  }
}
