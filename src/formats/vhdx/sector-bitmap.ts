/**
 * Sector bitmaps of differencing images, cached in 4 KiB pages (one page covers 32768 sectors).
 * Bit i of a bitmap block (bit i & 7 of byte i >> 3, least significant first) is set when
 * sector i of its chunk is stored in this file, clear when it comes from the parent.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import { VHDX_LOG_SECTOR_SIZE } from "./layout.js";
import type { VhdxMetadataSector } from "./bat.js";

/** Bits in one cached page. */
export const VHDX_BITMAP_PAGE_BITS = VHDX_LOG_SECTOR_SIZE * 8;

/** Cache of bitmap pages keyed by file offset; changed pages stay until taken for the log. */
export class VhdxSectorBitmapCache {
  private readonly pages = new Map<number, Uint8Array>();
  private readonly dirty = new Set<number>();

  constructor(
    private readonly file: IoBackend,
    /** Clean pages kept (least recently used go first). */
    private readonly maxPages = 1024,
  ) {}

  /** The 4 KiB page at `fileOffset` (4 KiB aligned). The array is the cache's own. */
  async page(fileOffset: number): Promise<Uint8Array> {
    let p = this.pages.get(fileOffset);
    if (p) {
      // Refresh its place in the LRU order.
      this.pages.delete(fileOffset);
      this.pages.set(fileOffset, p);
      return p;
    }
    p = await readZeroPadded(this.file, fileOffset, VHDX_LOG_SECTOR_SIZE);
    this.pages.set(fileOffset, p);
    this.evict();
    return p;
  }

  private evict(): void {
    if (this.pages.size <= this.maxPages) return;
    for (const key of this.pages.keys()) {
      if (this.pages.size <= this.maxPages) break;
      if (!this.dirty.has(key)) this.pages.delete(key);
    }
  }

  /**
   * Sets (or with `value` false clears) bits `[from, to)` of the bitmap block at `blockOffset`,
   * page by page, marking the pages changed.
   */
  async setBits(blockOffset: number, from: number, to: number, value = true): Promise<void> {
    let bit = from;
    while (bit < to) {
      const pageIndex = Math.floor(bit / VHDX_BITMAP_PAGE_BITS);
      const pageOffset = blockOffset + pageIndex * VHDX_LOG_SECTOR_SIZE;
      const page = await this.page(pageOffset);
      const base = pageIndex * VHDX_BITMAP_PAGE_BITS;
      const end = Math.min(to, base + VHDX_BITMAP_PAGE_BITS) - base;
      for (let b = bit - base; b < end; b++) {
        if ((b & 7) === 0 && b + 8 <= end) {
          page[b >>> 3] = value ? 0xff : 0;
          b += 7;
        } else if (value) {
          page[b >>> 3] |= 1 << (b & 7);
        } else {
          page[b >>> 3] &= ~(1 << (b & 7));
        }
      }
      this.dirty.add(pageOffset);
      bit = base + end;
    }
  }

  /** Number of changed pages waiting for the log. */
  get dirtyCount(): number {
    return this.dirty.size;
  }

  /** Copies of the changed pages; clears the changed set. */
  takeDirty(): VhdxMetadataSector[] {
    const out = [...this.dirty].sort((a, b) => a - b).map((o) => ({ fileOffset: o, data: this.pages.get(o)!.slice() }));
    this.dirty.clear();
    this.evict();
    return out;
  }

  /** Forgets every clean page (after a repair rewrote bitmaps). */
  dropClean(): void {
    for (const key of [...this.pages.keys()]) if (!this.dirty.has(key)) this.pages.delete(key);
  }
}
