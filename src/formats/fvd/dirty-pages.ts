/**
 * Which 4 KiB pages of an in-memory metadata region (bitmap, table) differ from the home copy
 * in the file, so a recycle or close writes only those.
 * @module
 */

/** A set of page indices. */
export class FvdDirtyPages {
  private readonly pages = new Set<number>();

  /** Marks page `page`. */
  add(page: number): void {
    this.pages.add(page);
  }

  /** Marks pages `[from, to)`. */
  addRange(from: number, to: number): void {
    for (let p = from; p < to; p++) this.pages.add(p);
  }

  /** The marked pages, ascending; the set is emptied. */
  take(): number[] {
    const out = [...this.pages].sort((a, b) => a - b);
    this.pages.clear();
    return out;
  }

  /** True when some page is marked. */
  get any(): boolean {
    return this.pages.size > 0;
  }
}
