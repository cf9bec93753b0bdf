/**
 * What the two-level table formats (QCOW v1, QED: an L1 table in memory naming L2 tables of
 * cluster offsets) share: locating a guest range in the tables, and linking new entries in the
 * crash-safe order.
 * @module
 */
import { ImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { TableCache } from "./table-cache.js";

/** Where a guest range falls in the tables. */
export interface TableSpan {
  /** Index of the L1 entry that covers `offset`. */
  readonly l1Index: number;
  /** Guest offset of the first byte that L1 entry covers. */
  readonly spanStart: number;
  /** End of the part of the range inside that L1 entry (and inside the disk). */
  readonly end: number;
  /** Index of the L2 entry that covers `offset`. */
  readonly first: number;
}

/** Locates `[offset, offset+length)` for tables whose L2 tables cover `l2Span` guest bytes each. */
export function tableSpan(offset: number, length: number, l2Span: number, clusterSize: number, size: number): TableSpan {
  const l1Index = Math.floor(offset / l2Span);
  const spanStart = l1Index * l2Span;
  return {
    l1Index,
    spanStart,
    end: Math.min(offset + length, spanStart + l2Span, size),
    first: Math.floor((offset - spanStart) / clusterSize),
  };
}

/** An L2 table about to be written: a cached one, or a new one whose space is reserved. */
export interface TableForWrite {
  readonly offset: number;
  readonly table: Uint8Array;
  readonly isNew: boolean;
}

/**
 * The L1 table, the L2 cache and the ordered linking of new entries. Subclasses decode entries.
 */
export abstract class TwoLevelTables {
  protected readonly cache: TableCache;
  protected readonly l1View: DataView;
  /** Set when a metadata write failed: memory and file may disagree, so writes stop. */
  private broken?: unknown;

  constructor(
    protected readonly file: IoBackend,
    /** Format name for messages. */
    protected readonly formatName: string,
    /** The L1 table's bytes as on disk (kept up to date in memory). */
    readonly l1: Uint8Array,
    /** Byte offset of the L1 table. */
    readonly l1TableOffset: number,
    cacheBytes: number,
  ) {
    this.cache = new TableCache(cacheBytes);
    this.l1View = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
  }

  /** Encodes L1 entry `index` (an L2 table offset) into {@link l1View}. */
  protected abstract encodeL1(index: number, l2Offset: number): void;

  /** Throws `ERR_IO` once a metadata write has failed. */
  protected assertUsable(): void {
    if (this.broken !== undefined) {
      throw new ImageError("ERR_IO", `Cannot write ${this.formatName} image: an earlier metadata write failed; reopen the image`, {
        format: this.formatName,
        cause: this.broken,
      });
    }
  }

  /**
   * Makes the entries already encoded in `t.table` bytes `[from, to)` part of the image: with
   * `flushFirst` the data written before is flushed first, then a new table is written whole
   * and named in L1 entry `l1Index`, or an existing table's changed bytes are written. A failure
   * stops further writes.
   */
  protected async link(l1Index: number, t: TableForWrite, from: number, to: number, flushFirst: boolean): Promise<void> {
    try {
      if (flushFirst) await this.file.flush();
      this.cache.set(t.offset, t.table);
      if (t.isNew) {
        await this.file.write(t.offset, t.table);
        this.encodeL1(l1Index, t.offset);
        await this.file.write(this.l1TableOffset + l1Index * 8, this.l1.subarray(l1Index * 8, l1Index * 8 + 8));
      } else {
        await this.file.write(t.offset + from, t.table.subarray(from, to));
      }
    } catch (e) {
      this.broken = e;
      throw e;
    }
  }

  /**
   * Zeroes the whole L1 table, in memory and in the file, and flushes: every range then reads
   * as the format reads a missing L2 table. The L2 tables and clusters stay in the file,
   * unreferenced, for the caller to cut off. A failure stops further writes.
   */
  protected async clearL1(): Promise<void> {
    this.assertUsable();
    this.l1.fill(0);
    this.cache.clear();
    try {
      await this.file.write(this.l1TableOffset, this.l1);
      await this.file.flush();
    } catch (e) {
      this.broken = e;
      throw e;
    }
  }

  /** Drops cached tables (after a repair rewrote them). */
  invalidate(): void {
    this.cache.clear();
  }
}
