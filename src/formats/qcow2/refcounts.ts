/**
 * qcow2 refcounts: the refcount table (kept in memory, written through), refcount blocks
 * (bounded write-back cache) and host cluster allocation at the end of the image.
 *
 * Ordering: a new cluster's refcount reaches the disk before anything references it, and a
 * cluster's refcount drops only after its last reference is gone from the disk, so a crash at
 * any write leaves at worst leaked clusters. Changes to existing refcount blocks stay in the
 * cache until {@link Qcow2Refcounts.writeBack}, which the owner calls before it writes any
 * reference to a cluster allocated meanwhile; a drop whose reference lives in a cached L2 table
 * waits in {@link Qcow2Refcounts.freeLater} until that table is on disk.
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { hex, qcow2CorruptIo } from "./errors.js";
import { QCOW2_MAX_REFTABLE_BYTES, QCOW2_REFT_RESERVED_LO, qcow2EntryOffset } from "./layout.js";
import { Qcow2TableCache } from "./table-cache.js";

const TWO32 = 4294967296;

/** Reads refcount entry `i` of a refcount block with `bits`-wide entries. */
export function qcow2GetRefcount(block: Uint8Array, i: number, order: number): number {
  switch (order) {
    case 4:
      return (block[i * 2] << 8) | block[i * 2 + 1];
    case 3:
      return block[i];
    case 5:
      return ((block[i * 4] << 24) | (block[i * 4 + 1] << 16) | (block[i * 4 + 2] << 8) | block[i * 4 + 3]) >>> 0;
    case 6: {
      const p = i * 8;
      const hi = ((block[p] << 24) | (block[p + 1] << 16) | (block[p + 2] << 8) | block[p + 3]) >>> 0;
      const lo = ((block[p + 4] << 24) | (block[p + 5] << 16) | (block[p + 6] << 8) | block[p + 7]) >>> 0;
      return hi * TWO32 + lo;
    }
    default: {
      const bits = 1 << order;
      const pos = i * bits;
      return (block[pos >>> 3] >>> (pos & 7)) & ((1 << bits) - 1);
    }
  }
}

/** Writes refcount entry `i`; `v` must fit the width (callers check {@link Qcow2Refcounts.max}). */
export function qcow2SetRefcount(block: Uint8Array, i: number, order: number, v: number): void {
  switch (order) {
    case 4:
      block[i * 2] = v >>> 8;
      block[i * 2 + 1] = v & 0xff;
      return;
    case 3:
      block[i] = v;
      return;
    case 5:
      new DataView(block.buffer, block.byteOffset).setUint32(i * 4, v);
      return;
    case 6: {
      const dv = new DataView(block.buffer, block.byteOffset);
      dv.setUint32(i * 8, Math.floor(v / TWO32));
      dv.setUint32(i * 8 + 4, v % TWO32);
      return;
    }
    default: {
      const bits = 1 << order;
      const pos = i * bits;
      const mask = ((1 << bits) - 1) << (pos & 7);
      block[pos >>> 3] = (block[pos >>> 3] & ~mask) | ((v << (pos & 7)) & mask);
    }
  }
}

/** Where refcount metadata lives; updated when the table moves. */
export interface Qcow2RefcountTableLocation {
  offset: number;
  clusters: number;
}

/** Options of {@link Qcow2Refcounts}. */
export interface Qcow2RefcountsOptions {
  file: IoBackend;
  clusterBits: number;
  refcountOrder: number;
  table: Qcow2RefcountTableLocation;
  /** File size at open (allocation starts at its end). */
  fileSize: number;
  /** Writes the new refcount table location into the header (one write). */
  writeTableLocation(loc: Qcow2RefcountTableLocation): Promise<void>;
  /** Called before the first metadata write (sets the dirty bit with lazy refcounts). */
  beforeWrite(): Promise<void>;
  /** Most refcount blocks cached. */
  cacheBlocks?: number;
}

/** A planned run of new clusters. */
interface Plan {
  start: number;
  newBlocks: number[];
  tableClusters: number;
  newTableEntries: number;
}

/** The refcount structure of an open image. */
export class Qcow2Refcounts {
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly order: number;
  /** Largest storable refcount. */
  readonly max: number;
  /** log2 of refcount entries per block. */
  readonly blockBits: number;
  /** Raw big-endian refcount table. */
  table: Uint8Array;
  tableEntries: number;
  location: Qcow2RefcountTableLocation;
  private readonly file: IoBackend;
  private readonly blocks: Qcow2TableCache;
  private readonly opts: Qcow2RefcountsOptions;
  /** Bumped whenever the refcount table changes (for caches derived from it). */
  version = 0;
  /** First cluster index that may be free. */
  private freeHint: number;

  private constructor(opts: Qcow2RefcountsOptions, table: Uint8Array) {
    this.opts = opts;
    this.file = opts.file;
    this.clusterBits = opts.clusterBits;
    this.clusterSize = 2 ** opts.clusterBits;
    this.order = opts.refcountOrder;
    this.max = this.order === 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << this.order) - 1;
    this.blockBits = opts.clusterBits + 3 - opts.refcountOrder;
    this.table = table;
    this.tableEntries = table.length / 8;
    this.location = { ...opts.table };
    this.freeHint = Math.ceil(opts.fileSize / this.clusterSize);
    const cs = this.clusterSize;
    this.blocks = new Qcow2TableCache(opts.cacheBlocks ?? Math.max(4, Math.floor((4 << 20) / cs)), async (off) =>
      readExact(this.file, off, cs, "refcount block", "qcow2"),
    );
  }

  /** Loads the refcount table (its size was bounded by the header check). */
  static async open(opts: Qcow2RefcountsOptions): Promise<Qcow2Refcounts> {
    const bytes = opts.table.clusters * 2 ** opts.clusterBits;
    const table = await readExact(opts.file, opts.table.offset, bytes, "refcount table", "qcow2");
    return new Qcow2Refcounts(opts, table);
  }

  /** The refcount block offset of table entry `i` (0 = none). Throws on a corrupt entry. */
  blockOffset(i: number): number {
    if (i >= this.tableEntries) return 0;
    const dv = new DataView(this.table.buffer, this.table.byteOffset);
    const hi = dv.getUint32(i * 8);
    const lo = dv.getUint32(i * 8 + 4);
    if ((lo & QCOW2_REFT_RESERVED_LO) !== 0 || hi > 0x00ffffff) {
      throw qcow2CorruptIo("use", `refcount table entry ${i} has reserved bits set`, "refcount table", this.location.offset + i * 8);
    }
    const off = qcow2EntryOffset(hi, lo);
    if (off % this.clusterSize !== 0) {
      throw qcow2CorruptIo("use", `refcount block offset ${hex(off)} is not cluster aligned`, "refcount table", this.location.offset + i * 8);
    }
    if (!Number.isSafeInteger(off + this.clusterSize)) {
      const at = this.location.offset + i * 8;
      throw qcow2CorruptIo("use", `refcount block offset ${hex(off)} is past 2^53`, "refcount table", at);
    }
    return off;
  }

  private async block(i: number): Promise<Uint8Array | undefined> {
    const off = this.blockOffset(i);
    if (off === 0) return undefined;
    if (off < this.clusterSize) {
      throw qcow2CorruptIo("use", `refcount block ${i} points at the header cluster`, "refcount table", this.location.offset + i * 8);
    }
    return this.blocks.get(off);
  }

  /** The refcount of host cluster `cluster` (0 past the table). */
  async get(cluster: number): Promise<number> {
    const bi = Math.floor(cluster / 2 ** this.blockBits);
    const b = await this.block(bi);
    if (!b) return 0;
    return qcow2GetRefcount(b, cluster % 2 ** this.blockBits, this.order);
  }

  /**
   * Adds `delta` to the refcounts of clusters `[first, first+count)` in existing blocks
   * (one write per block touched). A count dropping to 0 lets the space be reused.
   * Throws a corruption error when a count would leave `[0, max]` or its block is missing.
   */
  async adjust(first: number, count: number, delta: number): Promise<void> {
    if (count <= 0 || delta === 0) return;
    await this.opts.beforeWrite();
    const per = 2 ** this.blockBits;
    let c = first;
    const end = first + count;
    while (c < end) {
      const bi = Math.floor(c / per);
      const stop = Math.min(end, (bi + 1) * per);
      const loaded = await this.block(bi);
      if (!loaded) {
        throw qcow2CorruptIo("update", `cluster ${hex(c * this.clusterSize)} has no refcount block`, "refcount table");
      }
      const bOff = this.blockOffset(bi);
      const b = this.blocks.pinWith(bOff, loaded);
      try {
        for (let k = c; k < stop; k++) {
          const i = k - bi * per;
          const v = qcow2GetRefcount(b, i, this.order) + delta;
          if (v < 0 || v > this.max) {
            throw qcow2CorruptIo(
              "update",
              `refcount of cluster ${hex(k * this.clusterSize)} would become ${v} (allowed 0..${this.max})`,
              "refcount block",
              bOff,
            );
          }
          qcow2SetRefcount(b, i, this.order, v);
        }
        this.markRange(bOff, c - bi * per, stop - bi * per);
      } finally {
        this.blocks.unpin(bOff);
      }
      if (delta < 0 && c < this.freeHint) this.freeHint = c;
      c = stop;
    }
  }

  /** Marks the bytes of entries `[fromEntry, toEntry)` of the cached block at `bOff` dirty. */
  private markRange(bOff: number, fromEntry: number, toEntry: number): void {
    const bits = 1 << this.order;
    this.blocks.markDirty(bOff, Math.floor((fromEntry * bits) / 8), Math.ceil((toEntry * bits) / 8));
  }

  /**
   * Writes every changed refcount block (no flush). After it, every cluster allocated so far
   * has its refcount in the file and may be referenced. Returns whether anything was written.
   */
  writeBack(): Promise<boolean> {
    return this.blocks.writeBack((off, bytes) => this.file.write(off, bytes));
  }

  /** Refcount blocks changed in memory only. */
  get dirtyBlocks(): number {
    return this.blocks.dirtyCount;
  }

  /** Most refcount blocks the cache keeps. */
  get cacheCapacity(): number {
    return this.blocks.maxTables;
  }

  private pendingFrees: Array<[number, number]> = [];

  /**
   * Queues one reference less on clusters `[first, first+count)`, to be applied by the owner
   * once the metadata that dropped the reference is on disk ({@link takePendingFrees}). Until
   * then the clusters count as used, so they are not handed out again.
   */
  freeLater(first: number, count: number): void {
    if (count > 0) this.pendingFrees.push([first, count]);
  }

  /** Number of queued frees. */
  get pendingFreeCount(): number {
    return this.pendingFrees.length;
  }

  /** Hands the queued frees over (and forgets them): `[firstCluster, count]` runs. */
  takePendingFrees(): Array<[number, number]> {
    const f = this.pendingFrees;
    this.pendingFrees = [];
    return f;
  }

  /** True when clusters `[start, start+n)` all have refcount 0; else the first used index. */
  private async firstUsed(start: number, n: number): Promise<number> {
    const per = 2 ** this.blockBits;
    let c = start;
    const end = start + n;
    while (c < end) {
      const bi = Math.floor(c / per);
      const stop = Math.min(end, (bi + 1) * per);
      const b = await this.block(bi);
      if (b) {
        for (let k = c; k < stop; k++) if (qcow2GetRefcount(b, k - bi * per, this.order) !== 0) return k;
      }
      c = stop;
    }
    return -1;
  }

  private async findFree(n: number): Promise<number> {
    let start = this.freeHint;
    // Each failed probe moves past a used cluster, so this ends at the table's end at worst.
    for (;;) {
      const used = await this.firstUsed(start, n);
      if (used < 0) return start;
      if (start === this.freeHint) this.freeHint = used + 1;
      start = used + 1;
    }
  }

  private async plan(n: number): Promise<Plan> {
    const per = 2 ** this.blockBits;
    const cpt = this.clusterSize / 8; // table entries per table cluster
    let m = 0;
    let t = 0;
    for (let round = 0; ; round++) {
      const start = await this.findFree(m + t + n);
      const end = start + m + t + n;
      const firstBlock = Math.floor(start / per);
      const lastBlock = Math.floor((end - 1) / per);
      const newBlocks: number[] = [];
      for (let bi = firstBlock; bi <= lastBlock; bi++) if (this.blockOffset(bi) === 0) newBlocks.push(bi);
      let newT = 0;
      let newTableEntries = this.tableEntries;
      if (lastBlock >= this.tableEntries) {
        // Grow by at least half so that growth stays rare.
        const want = Math.max(lastBlock + 1, Math.ceil(this.tableEntries * 1.5));
        newT = Math.ceil(want / cpt);
        newTableEntries = newT * cpt;
        if (newT * this.clusterSize > QCOW2_MAX_REFTABLE_BYTES) {
          throw qcow2CorruptIo("grow", `the refcount table would exceed the limit of 8 MiB`, "refcount table");
        }
      }
      if (newBlocks.length === m && newT === t) return { start, newBlocks, tableClusters: t, newTableEntries };
      m = newBlocks.length;
      t = newT;
      if (round > 64) throw qcow2CorruptIo("allocate", "refcount metadata planning did not settle", "refcount table");
    }
  }

  /**
   * Allocates `n` contiguous free host clusters, sets their refcounts to 1 (creating refcount
   * blocks and moving the refcount table when needed) and returns the host offset of the first.
   */
  async allocate(n: number): Promise<number> {
    if (n <= 0) throw new RangeError(`allocate ${n} clusters`);
    await this.opts.beforeWrite();
    const p = await this.plan(n);
    const per = 2 ** this.blockBits;
    const cs = this.clusterSize;
    const m = p.newBlocks.length;
    const start = p.start;
    const end = start + m + p.tableClusters + n;
    // 1. Refcount blocks: new ones written whole, existing ones patched; all before any reference.
    const newBlockOffsets = new Map<number, number>();
    p.newBlocks.forEach((bi, k) => newBlockOffsets.set(bi, (start + k) * cs));
    const firstBlock = Math.floor(start / per);
    const lastBlock = Math.floor((end - 1) / per);
    for (let bi = firstBlock; bi <= lastBlock; bi++) {
      const from = Math.max(start, bi * per) - bi * per;
      const to = Math.min(end, (bi + 1) * per) - bi * per;
      const newOff = newBlockOffsets.get(bi);
      if (newOff !== undefined) {
        const b = new Uint8Array(cs);
        for (let i = from; i < to; i++) qcow2SetRefcount(b, i, this.order, 1);
        await this.file.write(newOff, b);
        this.blocks.insert(newOff, b);
      } else {
        const bOff = this.blockOffset(bi);
        const b = this.blocks.pinWith(bOff, (await this.block(bi))!);
        try {
          for (let i = from; i < to; i++) qcow2SetRefcount(b, i, this.order, 1);
          this.markRange(bOff, from, to);
        } finally {
          this.blocks.unpin(bOff);
        }
      }
    }
    // 2. Link the new blocks: in place, or through a new, larger table. The new blocks' own
    // refcounts may sit in cached blocks: they reach the file before the table points there.
    if (m > 0 || p.tableClusters > 0) await this.writeBack();
    if (m > 0) this.version++;
    if (p.tableClusters > 0) {
      const tOff = (start + m) * cs;
      const nt = new Uint8Array(p.tableClusters * cs);
      nt.set(this.table);
      const dv = new DataView(nt.buffer);
      for (const [bi, off] of newBlockOffsets) {
        dv.setUint32(bi * 8, Math.floor(off / TWO32));
        dv.setUint32(bi * 8 + 4, off % TWO32);
      }
      await this.file.write(tOff, nt);
      const old = this.location;
      const loc = { offset: tOff, clusters: p.tableClusters };
      await this.opts.writeTableLocation(loc);
      this.table = nt;
      this.tableEntries = p.newTableEntries;
      this.location = loc;
      await this.adjust(old.offset / cs, old.clusters, -1);
    } else if (m > 0) {
      const dv = new DataView(this.table.buffer, this.table.byteOffset);
      let lo = Infinity;
      let hi = -1;
      for (const [bi, off] of newBlockOffsets) {
        dv.setUint32(bi * 8, Math.floor(off / TWO32));
        dv.setUint32(bi * 8 + 4, off % TWO32);
        lo = Math.min(lo, bi);
        hi = Math.max(hi, bi);
      }
      await this.file.write(this.location.offset + lo * 8, this.table.subarray(lo * 8, (hi + 1) * 8));
    }
    if (end > this.freeHint) this.freeHint = end;
    return (start + m + p.tableClusters) * cs;
  }

  /** The host offset where the next {@link allocate} would start, if nothing is free before. */
  get nextFreeOffset(): number {
    return this.freeHint * this.clusterSize;
  }

  /** Replaces the in-memory table after a rebuild wrote a new structure. */
  replaceTable(table: Uint8Array, loc: Qcow2RefcountTableLocation, fileSize: number): void {
    this.table = table;
    this.tableEntries = table.length / 8;
    this.location = { ...loc };
    this.version++;
    // The old blocks are no longer part of the image: nothing of them may be written.
    this.blocks.reset();
    this.pendingFrees = [];
    this.freeHint = Math.ceil(fileSize / this.clusterSize);
  }
}
