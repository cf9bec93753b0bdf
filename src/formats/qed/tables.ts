/**
 * QED address translation and allocation: the L1 table in memory, L2 tables paged in, clusters
 * appended at the end of the file (the file length rounded down to whole clusters, as QEMU
 * allocates).
 *
 * Crash safety: before the first metadata change after a flush, the owner sets the
 * need-check feature bit (through `beforeChange`), so an image caught mid-allocation is
 * checked and repaired on its next read-write open. On top of that the engine writes data
 * before `commit` links it, a new L2 table is written whole before the L1 entry naming it,
 * and with a backing file the data is flushed before it is linked (a lost write would
 * otherwise replace backing data with zeros in the untouched part of the cluster).
 * @module
 */
import type { Allocation, DataMapping, Mapping } from "../../core/mapping.js";
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { TwoLevelTables, tableSpan, type TableForWrite } from "../shared/two-level-tables.js";
import { qedClusterOffsetValid, qedTableOffsetValid, type QedLayout } from "./header.js";
import { QED_ZERO_CLUSTER, readQedEntry, writeQedEntry, type QedGeometry } from "./layout.js";

const L2_CACHE_BYTES = 32 * 1024 * 1024;

/** What the owner of the tables provides. */
export interface QedTablesHooks {
  /** Called before any metadata change; marks the image as needing a check. */
  beforeChange(): Promise<void>;
  /** True when the image has a backing file (data is then flushed before it is linked). */
  readonly hasBacking: boolean;
}

/** The kind of one L2 entry. */
type EntryKind = "unallocated" | "zero" | "data";

function kindOf(e: number): EntryKind {
  return e === 0 ? "unallocated" : e === QED_ZERO_CLUSTER ? "zero" : "data";
}

/** The translation state of one open QED image. */
export class QedTables extends TwoLevelTables {
  readonly geo: QedGeometry;
  /** Virtual size (grows with `resize`). */
  size: number;
  /**
   * Read invalid entries as unallocated instead of failing: for a read-only open of an image
   * that needs a check, this reads what the repair of a read-write open would leave.
   */
  lenient = false;
  /** End of the allocated area: the file length in whole clusters, grown by allocation. */
  private end: number;

  private constructor(
    file: IoBackend,
    layout: QedLayout,
    l1: Uint8Array,
    fileSize: number,
    private readonly hooks: QedTablesHooks,
  ) {
    super(file, "qed", l1, layout.header.l1TableOffset, L2_CACHE_BYTES);
    this.geo = layout.geometry;
    this.size = layout.header.imageSize;
    this.end = fileSize - (fileSize % this.geo.clusterSize);
  }

  protected encodeL1(index: number, l2Offset: number): void {
    writeQedEntry(this.l1View, index, l2Offset);
  }

  /** Loads the L1 table of a validated image. */
  static async load(file: IoBackend, layout: QedLayout, fileSize: number, hooks: QedTablesHooks): Promise<QedTables> {
    const l1 = await readExact(file, layout.header.l1TableOffset, layout.geometry.tableBytes, "L1 table", "qed");
    return new QedTables(file, layout, l1, fileSize, hooks);
  }

  /** The allocated area's end (whole clusters). */
  get fileClusters(): number {
    return this.end;
  }

  /** Re-reads the file length (after a repair or to start a check). */
  async refreshEnd(): Promise<void> {
    const n = await this.file.size();
    this.end = n - (n % this.geo.clusterSize);
  }

  /** L1 entry `index`. */
  l1Entry(index: number): number {
    return readQedEntry(this.l1View, index);
  }

  /** Sets L1 entry `index` in memory only. */
  setL1EntryInMemory(index: number, value: number): void {
    this.encodeL1(index, value);
  }

  /** Writes the whole in-memory L1 table to the file. */
  async writeL1(): Promise<void> {
    await this.file.write(this.l1TableOffset, this.l1);
  }

  /** Reads the L2 table at `offset` without validating it (for the check), through the cache. */
  readL2(offset: number): Promise<Uint8Array> {
    return this.cache.load(offset, () => readExact(this.file, offset, this.geo.tableBytes, "L2 table", "qed"));
  }

  /** Writes a repaired L2 table (whole) and caches it. */
  async storeL2(offset: number, table: Uint8Array): Promise<void> {
    this.cache.set(offset, table);
    await this.file.write(offset, table);
  }

  /** True when `length` bytes at `offset` overlap the L1 table (only a damaged image does that). */
  private overlapsL1(offset: number, length: number): boolean {
    return offset < this.l1TableOffset + this.geo.tableBytes && offset + length > this.l1TableOffset;
  }

  private async l2For(l1i: number): Promise<{ offset: number; table: Uint8Array } | undefined> {
    const offset = this.l1Entry(l1i);
    if (offset === 0) return undefined;
    if (!qedTableOffsetValid(this.geo, offset, this.end) || this.overlapsL1(offset, this.geo.tableBytes)) {
      if (this.lenient) return undefined;
      throw new CorruptImageError(
        `Cannot read qed image: L1 entry ${l1i} names an invalid L2 table offset ${offset} (file has ${this.end} bytes of clusters)`,
        { format: "qed", structure: "L1 table", fileOffset: this.l1TableOffset + l1i * 8 },
      );
    }
    return { offset, table: await this.readL2(offset) };
  }

  /** Where guest `offset` lives (see `FormatInstance.getMapping`). */
  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const { l2Span, clusterSize: cs } = this.geo;
    const { l1Index: l1i, spanStart, end, first } = tableSpan(offset, length, l2Span, cs, this.size);
    const l2 = await this.l2For(l1i);
    if (!l2) return { kind: "backing", length: end - offset };
    const view = new DataView(l2.table.buffer, l2.table.byteOffset, l2.table.byteLength);
    const e = readQedEntry(view, first);
    const kind = kindOf(e);
    let k = first + 1;
    while (spanStart + k * cs < end) {
      const next = readQedEntry(view, k);
      if (kindOf(next) !== kind || (kind === "data" && next !== e + (k - first) * cs)) break;
      k++;
    }
    const clusterStart = spanStart + first * cs;
    if (kind === "data") {
      if (!qedClusterOffsetValid(this.geo, e, this.end) || this.overlapsL1(e, (k - first) * cs)) {
        if (this.lenient) return { kind: "backing", length: Math.min(end, clusterStart + cs) - offset };
        throw new CorruptImageError(
          `Cannot read qed image: L2 entry for guest offset ${clusterStart} names an invalid cluster offset ${e} (file has ${this.end} bytes of clusters)`,
          { format: "qed", structure: "L2 table", fileOffset: l2.offset + first * 8 },
        );
      }
      // A contiguous run is valid up to the end of the file; the next call judges the rest.
      k = Math.min(k, first + Math.floor((this.end - e) / cs));
    }
    const len = Math.min(end, spanStart + k * cs) - offset;
    if (kind === "unallocated") return { kind: "backing", length: len };
    if (kind === "zero") return { kind: "zero", length: len, allocated: true };
    return { kind: "data", length: len, file: this.file, fileOffset: e + (offset - clusterStart) };
  }

  /**
   * The L2 table for a write to L1 entry `l1i`: the existing one, or a new zeroed table with its
   * space reserved at the end of the allocated area.
   */
  private async tableForWrite(l1i: number): Promise<TableForWrite> {
    const l2 = await this.l2For(l1i);
    if (l2) return { ...l2, isNew: false };
    const offset = this.end;
    this.end += this.geo.tableBytes;
    return { offset, table: new Uint8Array(this.geo.tableBytes), isNew: true };
  }

  /** Encodes `values` from L2 index `first` on and links them. */
  private async linkEntries(l1i: number, t: TableForWrite, first: number, values: number[], flushFirst: boolean): Promise<void> {
    const view = new DataView(t.table.buffer, t.table.byteOffset, t.table.byteLength);
    values.forEach((v, i) => writeQedEntry(view, first + i, v));
    await this.link(l1i, t, first * 8, (first + values.length) * 8, flushFirst);
  }

  /** Makes whole clusters from `offset` writable (see `FormatInstance.allocate`). */
  async allocate(offset: number, length: number): Promise<Allocation> {
    this.assertUsable();
    const { l2Span, clusterSize: cs } = this.geo;
    const { l1Index: l1i, spanStart, end, first } = tableSpan(offset, length, l2Span, cs, this.size);
    await this.hooks.beforeChange();
    const t = await this.tableForWrite(l1i);
    const view = new DataView(t.table.buffer, t.table.byteOffset, t.table.byteLength);
    let count = 0;
    while (spanStart + (first + count) * cs < end && kindOf(readQedEntry(view, first + count)) !== "data") count++;
    if (count === 0) {
      const m = (await this.getMapping(offset, length)) as DataMapping;
      return { mapping: m, commit: async () => {} };
    }
    const dataOffset = this.end;
    this.end += count * cs;
    const values: number[] = [];
    for (let i = 0; i < count; i++) values.push(dataOffset + i * cs);
    return {
      mapping: { kind: "data", length: Math.min(count * cs, end - offset), file: this.file, fileOffset: dataOffset },
      commit: async () => {
        // The last cluster may be written short (at the end of the disk): keep whole clusters.
        if ((await this.file.size()) < this.end) await this.file.truncate(this.end);
        await this.linkEntries(l1i, t, first, values, this.hooks.hasBacking);
      },
    };
  }

  /**
   * Marks whole clusters from `offset` as zero clusters (see `FormatInstance.zeroRange`).
   * Handles only clusters that hold no data (allocated clusters are zeroed in place by the
   * engine: QED cannot free them). Returns the bytes handled.
   */
  async zeroRange(offset: number, length: number): Promise<number> {
    this.assertUsable();
    const { l2Span, clusterSize: cs } = this.geo;
    const { l1Index: l1i, spanStart, end, first } = tableSpan(offset, length, l2Span, cs, this.size);
    const existing = await this.l2For(l1i);
    const read = existing ? new DataView(existing.table.buffer, existing.table.byteOffset, existing.table.byteLength) : undefined;
    // Whole clusters only (the last cluster of the disk may be short).
    const stop = end === this.size ? end : end - ((end - spanStart) % cs);
    let count = 0;
    let changes = 0;
    while (spanStart + (first + count) * cs < stop) {
      const kind = read ? kindOf(readQedEntry(read, first + count)) : "unallocated";
      if (kind === "data") break;
      if (kind === "unallocated") changes++;
      count++;
    }
    if (count === 0) return 0;
    if (changes > 0) {
      await this.hooks.beforeChange();
      const t = await this.tableForWrite(l1i);
      if (t.isNew && (await this.file.size()) < this.end) await this.file.truncate(this.end);
      await this.linkEntries(l1i, t, first, new Array<number>(count).fill(QED_ZERO_CLUSTER), false);
    }
    return Math.min(spanStart + (first + count) * cs, this.size) - offset;
  }
}
