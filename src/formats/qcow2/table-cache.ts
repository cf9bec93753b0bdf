/**
 * A bounded, write-back cache of cluster-sized metadata tables (L2 tables, refcount blocks)
 * keyed by host offset. Loads of the same table are shared; tables a writer holds are pinned
 * so a reader can never reload a stale copy while the writer's update is in memory only.
 *
 * Write-back: users change a cached table in place and {@link Qcow2TableCache.markDirty} the
 * bytes they changed; the cache writes them at {@link Qcow2TableCache.writeBack}. A dirty table
 * is never evicted (its bytes exist nowhere else). The order in which different caches are
 * written back — the point of caching at all — is decided by their owner (see `instance.ts`).
 * @module
 */

interface Slot {
  table: Uint8Array;
  pins: number;
  /** Dirty byte range `[dirtyFrom, dirtyTo)`; empty when `dirtyTo <= dirtyFrom`. */
  dirtyFrom: number;
  dirtyTo: number;
}

/** Writes bytes at a host offset (the image file's `write`). */
export type Qcow2TableWriter = (offset: number, bytes: Uint8Array) => Promise<void>;

/** The cache. */
export class Qcow2TableCache {
  private readonly slots = new Map<number, Slot>();
  private readonly loading = new Map<number, Promise<Uint8Array>>();
  private dirty = 0;

  /**
   * @param maxTables most clean tables kept (pinned and dirty tables may exceed it until they
   *   are released or written back)
   * @param load reads and validates the table at a host offset
   */
  constructor(
    readonly maxTables: number,
    private readonly load: (offset: number) => Promise<Uint8Array>,
  ) {}

  /** The table at `offset`, loaded once. The buffer stays valid while pinned, dirty or cached. */
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

  /** Puts a table the caller created (a new L2 table, a new refcount block) and has written. */
  insert(offset: number, table: Uint8Array): void {
    const old = this.slots.get(offset);
    if (old) {
      old.table = table;
      return;
    }
    this.slots.set(offset, { table, pins: 0, dirtyFrom: 0, dirtyTo: 0 });
    this.evict();
  }

  /**
   * Makes sure `offset` is cached and pinned, adopting `table` when it is not cached; returns
   * the cached buffer (the one every reader sees).
   */
  pinWith(offset: number, table: Uint8Array): Uint8Array {
    let s = this.slots.get(offset);
    if (!s) {
      s = { table, pins: 0, dirtyFrom: 0, dirtyTo: 0 };
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

  /**
   * Records that bytes `[from, to)` of the cached table at `offset` changed in memory and must
   * reach the file at the next {@link writeBack}. The table must be cached (pinned by the caller).
   */
  markDirty(offset: number, from: number, to: number): void {
    const s = this.slots.get(offset);
    if (!s) throw new Error(`qcow2 table cache: marking ${offset} dirty, which is not cached`);
    if (s.dirtyTo <= s.dirtyFrom) {
      this.dirty++;
      s.dirtyFrom = from;
      s.dirtyTo = to;
    } else {
      s.dirtyFrom = Math.min(s.dirtyFrom, from);
      s.dirtyTo = Math.max(s.dirtyTo, to);
    }
  }

  /** Number of tables with changes not yet written. */
  get dirtyCount(): number {
    return this.dirty;
  }

  /**
   * Writes the dirty range of every dirty table with `write` and marks them clean. The bytes
   * are copied first, so the caller may keep changing tables while the writes run; a change
   * made meanwhile stays dirty for the next write-back. A failed write marks its table dirty
   * again. Returns whether anything was written.
   */
  async writeBack(write: Qcow2TableWriter): Promise<boolean> {
    if (this.dirty === 0) return false;
    const jobs: Array<{ slot: Slot; offset: number; from: number; to: number; bytes: Uint8Array }> = [];
    for (const [offset, s] of this.slots) {
      if (s.dirtyTo <= s.dirtyFrom) continue;
      jobs.push({ slot: s, offset, from: s.dirtyFrom, to: s.dirtyTo, bytes: s.table.slice(s.dirtyFrom, s.dirtyTo) });
      s.dirtyFrom = s.dirtyTo = 0;
      // Pinned until its write has landed: evicted earlier, a reader could reload the old bytes.
      s.pins++;
    }
    this.dirty = 0;
    // Ascending file offsets: the writes land in one sweep.
    jobs.sort((a, b) => a.offset - b.offset);
    let failure: { error: unknown } | undefined;
    for (const j of jobs) {
      try {
        await write(j.offset + j.from, j.bytes);
      } catch (e) {
        failure ??= { error: e };
        if (this.slots.get(j.offset) === j.slot) this.markDirty(j.offset, j.from, j.to);
      } finally {
        j.slot.pins--;
      }
    }
    this.evict();
    if (failure) throw failure.error;
    return jobs.length > 0;
  }

  /** Forgets `offset` (the cluster was freed or relocated), dirty or not. */
  drop(offset: number): void {
    const s = this.slots.get(offset);
    if (s && s.dirtyTo > s.dirtyFrom) this.dirty--;
    this.slots.delete(offset);
  }

  /** Forgets everything unpinned and clean. */
  clear(): void {
    for (const [k, s] of this.slots) if (s.pins === 0 && s.dirtyTo <= s.dirtyFrom) this.slots.delete(k);
  }

  /** Forgets every table, pinned or dirty too (the structure they belonged to was replaced). */
  reset(): void {
    this.slots.clear();
    this.dirty = 0;
  }

  private evict(): void {
    if (this.slots.size <= this.maxTables) return;
    for (const [k, s] of this.slots) {
      if (this.slots.size <= this.maxTables) break;
      if (s.pins === 0 && s.dirtyTo <= s.dirtyFrom) this.slots.delete(k);
    }
  }
}
