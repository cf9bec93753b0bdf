/**
 * The guest-to-host map of qcow2: the active L1 table (in memory, written through) and L2
 * tables (bounded write-back cache), entry decoding, and making an L2 table writable
 * (allocation or copy-on-write).
 * @module
 */
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { hex, qcow2CorruptIo } from "./errors.js";
import {
  QCOW2_L1_RESERVED_HI,
  QCOW2_L1_RESERVED_LO,
  QCOW2_OFLAG_COPIED_HI,
  qcow2EntryOffset,
  qcow2OffsetHi,
  qcow2OffsetLo,
} from "./layout.js";
import type { Qcow2Refcounts } from "./refcounts.js";
import { Qcow2TableCache } from "./table-cache.js";

/** A decoded L2 entry: the descriptor word and (extended L2) the bitmap word, as u32 halves. */
export interface Qcow2L2Entry {
  hi: number;
  lo: number;
  /** Extended L2: zero bits (high word of the bitmap). 0 otherwise. */
  bmHi: number;
  /** Extended L2: allocation bits (low word of the bitmap). 0 otherwise. */
  bmLo: number;
}

/** Options of {@link Qcow2ClusterMap}. */
export interface Qcow2ClusterMapOptions {
  file: IoBackend;
  clusterBits: number;
  extendedL2: boolean;
  l1TableOffset: number;
  l1Size: number;
  refcounts?: Qcow2Refcounts;
  /** Called before the first metadata write. */
  beforeWrite(): Promise<void>;
  cacheTables?: number;
}

/** A writable L2 table held by a writer (pinned until released). */
export interface Qcow2WritableL2 {
  offset: number;
  table: Uint8Array;
  release(): void;
}

/** The active L1/L2 map of an open image. */
export class Qcow2ClusterMap {
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly extendedL2: boolean;
  /** Bytes per L2 entry (8 or 16). */
  readonly entryBytes: number;
  /** Entries per L2 table. */
  readonly l2Entries: number;
  l1Size: number;
  l1TableOffset: number;
  /** Raw big-endian active L1 table. */
  l1: Uint8Array;
  private l1View: DataView;
  private readonly file: IoBackend;
  readonly l2Cache: Qcow2TableCache;
  private readonly opts: Qcow2ClusterMapOptions;

  private constructor(opts: Qcow2ClusterMapOptions, l1: Uint8Array) {
    this.opts = opts;
    this.file = opts.file;
    this.clusterBits = opts.clusterBits;
    this.clusterSize = 2 ** opts.clusterBits;
    this.extendedL2 = opts.extendedL2;
    this.entryBytes = opts.extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.entryBytes;
    this.l1Size = opts.l1Size;
    this.l1TableOffset = opts.l1TableOffset;
    this.l1 = l1;
    this.l1View = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    const cs = this.clusterSize;
    this.l2Cache = new Qcow2TableCache(opts.cacheTables ?? Math.max(4, Math.floor((8 << 20) / cs)), (off) =>
      readExact(this.file, off, cs, "L2 table", "qcow2"),
    );
  }

  /** Loads the active L1 table (its size was bounded by the header check). */
  static async open(opts: Qcow2ClusterMapOptions): Promise<Qcow2ClusterMap> {
    const l1 = opts.l1Size > 0
      ? await readExact(opts.file, opts.l1TableOffset, opts.l1Size * 8, "L1 table", "qcow2")
      : new Uint8Array(0);
    return new Qcow2ClusterMap(opts, l1);
  }

  /** L2 offset of L1 entry `i` (0 = unallocated); throws on a corrupt entry. */
  l2Offset(i: number): number {
    if (i >= this.l1Size) return 0;
    const hi = this.l1View.getUint32(i * 8);
    const lo = this.l1View.getUint32(i * 8 + 4);
    const off = qcow2EntryOffset(hi, lo);
    if ((hi & QCOW2_L1_RESERVED_HI) !== 0 || (lo & QCOW2_L1_RESERVED_LO) !== 0) {
      throw qcow2CorruptIo("read", `L1 entry ${i} has reserved bits set (L2 offset ${hex(off)})`, "L1 table", this.l1TableOffset + i * 8);
    }
    const cs = this.clusterSize;
    if (off !== 0 && (off % cs !== 0 || off < cs || !Number.isSafeInteger(off + cs))) {
      throw qcow2CorruptIo("read", `L2 table offset ${hex(off)} in L1 entry ${i} is not a valid cluster`, "L1 table", this.l1TableOffset + i * 8);
    }
    return off;
  }

  /**
   * Moves the active L1 table to `offset` with `size` entries (growing keeps the entries, the
   * new ones are zero). The caller has written the table there and updated the header.
   */
  replaceL1(table: Uint8Array, offset: number, size: number): void {
    this.l1 = table;
    this.l1View = new DataView(table.buffer, table.byteOffset, table.byteLength);
    this.l1TableOffset = offset;
    this.l1Size = size;
    this.version++;
  }

  /** Clears L1 entry `i` on disk (its L2 table is released by the caller afterwards). */
  async clearL1Entry(i: number): Promise<void> {
    this.version++;
    this.l1View.setUint32(i * 8, 0);
    this.l1View.setUint32(i * 8 + 4, 0);
    await this.file.write(this.l1TableOffset + i * 8, this.l1.subarray(i * 8, i * 8 + 8));
  }

  /** True when L1 entry `i` has the COPIED flag (its L2 table may be written in place). */
  l1Copied(i: number): boolean {
    return (this.l1View.getUint32(i * 8) & QCOW2_OFLAG_COPIED_HI) !== 0;
  }

  /** The L2 table at `offset` (cached). */
  l2Table(offset: number): Promise<Uint8Array> {
    return this.l2Cache.get(offset);
  }

  /** Reads entry `i` of an L2 table. */
  entry(table: Uint8Array, i: number): Qcow2L2Entry {
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const p = i * this.entryBytes;
    if (this.extendedL2) {
      return { hi: dv.getUint32(p), lo: dv.getUint32(p + 4), bmHi: dv.getUint32(p + 8), bmLo: dv.getUint32(p + 12) };
    }
    return { hi: dv.getUint32(p), lo: dv.getUint32(p + 4), bmHi: 0, bmLo: 0 };
  }

  /** Stores entry `i` in the in-memory table (the caller writes the table range). */
  setEntry(table: Uint8Array, i: number, e: Qcow2L2Entry): void {
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const p = i * this.entryBytes;
    dv.setUint32(p, e.hi >>> 0);
    dv.setUint32(p + 4, e.lo >>> 0);
    if (this.extendedL2) {
      dv.setUint32(p + 8, e.bmHi >>> 0);
      dv.setUint32(p + 12, e.bmLo >>> 0);
    }
  }

  /**
   * Records that entries `[from, to)` of a writable L2 table changed. They reach the file at
   * the next {@link writeBack}, which the owner runs only after the refcounts of every cluster
   * the entries reference are on disk.
   */
  markEntries(l2: Qcow2WritableL2, from: number, to: number): void {
    this.l2Cache.markDirty(l2.offset, from * this.entryBytes, to * this.entryBytes);
  }

  /** Writes every changed L2 table (no flush). Returns whether anything was written. */
  writeBack(): Promise<boolean> {
    return this.l2Cache.writeBack((off, bytes) => this.file.write(off, bytes));
  }

  /** Bumped whenever an L1 entry changes (for caches derived from the L1 table). */
  version = 0;

  private async writeL1Entry(i: number, offset: number): Promise<void> {
    this.version++;
    this.l1View.setUint32(i * 8, (QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(offset)) >>> 0);
    this.l1View.setUint32(i * 8 + 4, qcow2OffsetLo(offset));
    await this.file.write(this.l1TableOffset + i * 8, this.l1.subarray(i * 8, i * 8 + 8));
  }

  /**
   * The L2 table of L1 entry `i`, ready to be modified in place: allocates a zeroed table when
   * there is none and copies a shared one (copy-on-write). New tables are written before the
   * L1 entry that points at them; a replaced table's refcount drops last.
   */
  async writableL2(i: number): Promise<Qcow2WritableL2> {
    const refcounts = this.opts.refcounts;
    if (!refcounts) throw new Error("qcow2 cluster map opened without refcounts is read-only");
    if (i >= this.l1Size) {
      throw qcow2CorruptIo("write", `guest offset needs L1 entry ${i} but the L1 table has ${this.l1Size}`, "L1 table");
    }
    const old = this.l2Offset(i);
    if (old !== 0 && this.l1Copied(i)) return this.hold(old, await this.l2Table(old));
    await this.opts.beforeWrite();
    const source = old !== 0 ? await this.l2Table(old) : undefined;
    const off = await refcounts.allocate(1);
    const table = source ? source.slice() : new Uint8Array(this.clusterSize);
    await this.file.write(off, table);
    this.l2Cache.insert(off, table);
    const held = this.hold(off, table);
    try {
      // The table and its refcount (in a cached block) are on stable storage before the L1
      // entry is written: a volatile disk cache could otherwise keep the entry and lose either.
      await refcounts.writeBack();
      await this.file.flush();
      await this.writeL1Entry(i, off);
      if (old !== 0) await refcounts.adjust(old / this.clusterSize, 1, -1);
    } catch (e) {
      held.release();
      throw e;
    }
    return held;
  }

  private hold(offset: number, table: Uint8Array): Qcow2WritableL2 {
    table = this.l2Cache.pinWith(offset, table);
    let released = false;
    return {
      offset,
      table,
      release: () => {
        if (!released) this.l2Cache.unpin(offset);
        released = true;
      },
    };
  }
}
