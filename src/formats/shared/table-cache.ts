/**
 * A byte-bounded LRU cache of metadata tables (L2 tables, bitmaps) keyed by file offset, shared
 * by the format drivers that page tables in on demand.
 * @module
 */

/**
 * Caches raw table bytes by file offset. Concurrent loads of one table share a single read,
 * and a load that finishes after the table was {@link TableCache.set} (a commit updated it while
 * the read was in flight) returns the newer cached copy instead of the stale bytes it read.
 */
export class TableCache {
  private readonly tables = new Map<number, Uint8Array>();
  private readonly loading = new Map<number, Promise<Uint8Array>>();
  private bytes = 0;

  /** `maxBytes`: the budget; the most recently used table is always kept, whatever its size. */
  constructor(private readonly maxBytes: number) {}

  /** The cached table at `offset` (marked most recently used), or `undefined`. */
  get(offset: number): Uint8Array | undefined {
    const t = this.tables.get(offset);
    if (t) {
      this.tables.delete(offset);
      this.tables.set(offset, t);
    }
    return t;
  }

  /** Stores (or replaces) the table at `offset`. The cache keeps `table` itself, not a copy. */
  set(offset: number, table: Uint8Array): void {
    const old = this.tables.get(offset);
    if (old) {
      this.bytes -= old.length;
      this.tables.delete(offset);
    }
    this.tables.set(offset, table);
    this.bytes += table.length;
    for (const [k, v] of this.tables) {
      if (this.bytes <= this.maxBytes || this.tables.size <= 1) break;
      this.tables.delete(k);
      this.bytes -= v.length;
    }
  }

  /** The table at `offset`, read with `read` when it is not cached. */
  async load(offset: number, read: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = this.get(offset);
    if (hit) return hit;
    let p = this.loading.get(offset);
    if (!p) {
      p = read().then(
        (t) => {
          this.loading.delete(offset);
          const newer = this.tables.get(offset);
          if (newer) return newer;
          this.set(offset, t);
          return t;
        },
        (e: unknown) => {
          this.loading.delete(offset);
          throw e;
        },
      );
      this.loading.set(offset, p);
    }
    return p;
  }

  /** Forgets every table. */
  clear(): void {
    this.tables.clear();
    this.bytes = 0;
  }
}
