/**
 * A bounded cache of cluster-sized metadata tables (L2 tables, refcount blocks) keyed by host
 * offset. Loads of the same table are shared; tables a writer holds are pinned so a reader can
 * never reload a stale copy while the writer's update is on its way to disk.
 * @module
 */

interface Slot {
  table: Uint8Array;
  pins: number;
}

/** The cache. Metadata is written through by its users; the cache never writes. */
export class Qcow2TableCache {
  private readonly slots = new Map<number, Slot>();
  private readonly loading = new Map<number, Promise<Uint8Array>>();

  /**
   * @param maxTables most tables kept (pinned tables may exceed it briefly)
   * @param load reads and validates the table at a host offset
   */
  constructor(
    private readonly maxTables: number,
    private readonly load: (offset: number) => Promise<Uint8Array>,
  ) {}

  /** The table at `offset`, loaded once. The buffer stays valid while pinned or cached. */
  async get(offset: number): Promise<Uint8Array> {
    const slot = this.slots.get(offset);
    if (slot) {
      // Refresh LRU position.
      this.slots.delete(offset);
      this.slots.set(offset, slot);
      return slot.table;
    }
    let p = this.loading.get(offset);
    if (!p) {
      p = this.load(offset).then(
        (table) => {
          this.loading.delete(offset);
          const existing = this.slots.get(offset);
          if (existing) return existing.table;
          this.insert(offset, table);
          return table;
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

  /** Puts a table the caller created (a new L2 table, a new refcount block). */
  insert(offset: number, table: Uint8Array): void {
    const old = this.slots.get(offset);
    if (old) {
      old.table = table;
      return;
    }
    this.slots.set(offset, { table, pins: 0 });
    this.evict();
  }

  /**
   * Makes sure `offset` is cached and pinned, adopting `table` when it is not cached; returns
   * the cached buffer (the one every reader sees).
   */
  pinWith(offset: number, table: Uint8Array): Uint8Array {
    let s = this.slots.get(offset);
    if (!s) {
      s = { table, pins: 0 };
      this.slots.set(offset, s);
    }
    s.pins++;
    this.evict();
    return s.table;
  }

  /** Keeps `offset` cached until {@link unpin}. The table must be cached. */
  pin(offset: number): void {
    const s = this.slots.get(offset);
    if (s) s.pins++;
  }

  unpin(offset: number): void {
    const s = this.slots.get(offset);
    if (s && s.pins > 0) s.pins--;
    this.evict();
  }

  /** Forgets `offset` (the cluster was freed or relocated). */
  drop(offset: number): void {
    this.slots.delete(offset);
  }

  /** Forgets everything unpinned. */
  clear(): void {
    for (const [k, s] of this.slots) if (s.pins === 0) this.slots.delete(k);
  }

  private evict(): void {
    if (this.slots.size <= this.maxTables) return;
    for (const [k, s] of this.slots) {
      if (this.slots.size <= this.maxTables) break;
      if (s.pins === 0) this.slots.delete(k);
    }
  }
}
