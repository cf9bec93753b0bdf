/**
 * The copy-on-write bitmap in memory: one bit per block of the base range, 1 = the block lives
 * in the FVD image. Tracks which 4 KiB pages differ from the home copy in the file.
 * @module
 */
import type { Kernel } from "../../kernel/kernel.js";
import { FvdDirtyPages } from "./dirty-pages.js";
import { FVD_REGION_ALIGN } from "./layout.js";

/** The bitmap of an open image. */
export class FvdBitmap {
  /** The whole home region (`bitmap_size` bytes), bit b = bit (b % 8) of byte b / 8. */
  readonly bits: Uint8Array;
  readonly blockSize: number;
  /** Bits in use: blocks of `[0, baseSize)`. */
  blocks: number;
  /** Bytes of the base range the bits cover. */
  baseSize: number;
  private readonly dirtyPages = new FvdDirtyPages();

  constructor(bits: Uint8Array, blockSize: number, baseSize: number) {
    this.bits = bits;
    this.blockSize = blockSize;
    this.baseSize = baseSize;
    this.blocks = Math.ceil(baseSize / blockSize);
  }

  /** True when block `b` lives in the FVD image. */
  isSet(b: number): boolean {
    return (this.bits[b >>> 3] & (1 << (b & 7))) !== 0;
  }

  /** The first block in `[b, limit)` whose bit differs from block `b`'s, or `limit`. */
  runEnd(b: number, limit: number, kernel: Kernel): number {
    return this.isSet(b) ? kernel.nextClearBit(this.bits, b, limit, false) : kernel.nextSetBit(this.bits, b, limit, false);
  }

  /** True when some block overlapping `[start, end)` (bytes, clipped to the base) is still 0. */
  anyClear(start: number, end: number, kernel: Kernel): boolean {
    const e = Math.min(end, this.baseSize);
    if (start >= e) return false;
    const b0 = Math.floor(start / this.blockSize);
    const b1 = Math.ceil(e / this.blockSize);
    return kernel.nextClearBit(this.bits, b0, b1, false) < b1;
  }

  /**
   * Sets the bits of every block overlapping `[start, end)` (bytes, clipped to the base range).
   * Returns true when a bit changed.
   */
  setRange(start: number, end: number): boolean {
    const e = Math.min(end, this.baseSize);
    if (start >= e) return false;
    const b0 = Math.floor(start / this.blockSize);
    const b1 = Math.ceil(e / this.blockSize);
    let changed = false;
    let b = b0;
    while (b < b1) {
      if ((b & 7) === 0 && b + 8 <= b1) {
        const i = b >>> 3;
        if (this.bits[i] !== 0xff) {
          this.bits[i] = 0xff;
          this.dirtyPages.add(Math.floor(i / FVD_REGION_ALIGN));
          changed = true;
        }
        b += 8;
        continue;
      }
      const i = b >>> 3;
      const m = 1 << (b & 7);
      if (!(this.bits[i] & m)) {
        this.bits[i] |= m;
        this.dirtyPages.add(Math.floor(i / FVD_REGION_ALIGN));
        changed = true;
      }
      b++;
    }
    return changed;
  }

  /** Sets every bit in use (the end of a flatten). */
  setAll(): void {
    this.setRange(0, this.baseSize);
  }

  /** Marks every page as differing from home (after a journal replay). */
  markAllDirty(): void {
    this.dirtyPages.addRange(0, Math.ceil(this.bits.length / FVD_REGION_ALIGN));
  }

  /** Pages that differ from home, ascending; the set is emptied. */
  takeDirtyPages(): number[] {
    return this.dirtyPages.take();
  }

  /** True when some page differs from home. */
  get dirty(): boolean {
    return this.dirtyPages.any;
  }
}
