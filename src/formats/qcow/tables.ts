/**
 * QCOW (v1) address translation and allocation: the L1 table in memory, L2 tables paged in,
 * clusters appended at the end of the file.
 *
 * Crash safety: new space is reserved by growing the file first, the engine writes the data,
 * then `commit` flushes it and only then links it (a new L2 table is written whole before the
 * L1 entry naming it; its space is already reserved, so an entry that lands first names an
 * empty table). A crash at any point leaves at worst unreferenced space, never an entry
 * naming unwritten data.
 * @module
 */
import { CorruptImageError } from "../../errors.js";
import type { Allocation, DataMapping, Mapping, SpecialMapping } from "../../core/mapping.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { TwoLevelTables, tableSpan, type TableForWrite } from "../shared/two-level-tables.js";
import { deflateQcowCluster, inflateQcowCluster } from "./compress.js";
import type { QcowLayout } from "./header.js";
import {
  QCOW_MAX_COMPRESSED_CLUSTER,
  decodeQcowL1Entry,
  decodeQcowL2Entry,
  encodeQcowL1Entry,
  encodeQcowL2Entry,
  type QcowEntry,
  type QcowGeometry,
} from "./layout.js";

/** How a compressed cluster is found again by `readSpecial`. */
export interface QcowCompressedToken {
  /** Guest offset of the cluster's first byte. */
  readonly guestCluster: number;
  readonly fileOffset: number;
  readonly compressedSize: number;
}

const L2_CACHE_BYTES = 8 * 1024 * 1024;

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** The translation state of one open QCOW image. */
export class QcowTables extends TwoLevelTables {
  readonly geo: QcowGeometry;
  readonly size: number;
  /** End of the file as far as allocation is concerned (grows as clusters are appended). */
  private fileEnd: number;
  /** End of the header and L1 table: nothing may point below it. */
  private readonly metaEnd: number;
  /** The last cluster inflated, for runs of small reads inside one compressed cluster. */
  private inflated?: { key: number; data: Uint8Array };

  private constructor(file: IoBackend, layout: QcowLayout, l1: Uint8Array, fileSize: number) {
    super(file, "qcow", l1, layout.header.l1TableOffset, L2_CACHE_BYTES);
    this.geo = layout.geometry;
    this.size = layout.size;
    this.fileEnd = fileSize;
    this.metaEnd = this.l1TableOffset + l1.length;
  }

  protected encodeL1(index: number, l2Offset: number): void {
    encodeQcowL1Entry(this.l1View, index * 8, l2Offset);
  }

  /** Loads the L1 table of a validated image. */
  static async load(file: IoBackend, layout: QcowLayout, fileSize: number): Promise<QcowTables> {
    const l1 = await readExact(file, layout.header.l1TableOffset, layout.geometry.l1Entries * 8, "L1 table", "qcow");
    return new QcowTables(file, layout, l1, fileSize);
  }

  /** Number of L1 entries. */
  get l1Entries(): number {
    return this.geo.l1Entries;
  }

  /** The L2 table offset in L1 entry `index` (0 = none; `Infinity` when past 2^53). */
  l1Entry(index: number): number {
    return decodeQcowL1Entry(this.l1View, index * 8);
  }

  /** Entry `index` of an L2 table's bytes. */
  l2Entry(table: Uint8Array, index: number): QcowEntry {
    return decodeQcowL2Entry(new DataView(table.buffer, table.byteOffset, table.byteLength), index * 8, this.geo.clusterBits);
  }

  /** Reads the L2 table at `l2Offset` (named by L1 entry `l1Index`), through the cache. */
  async l2Table(l2Offset: number, l1Index: number): Promise<Uint8Array> {
    const bytes = this.geo.l2Bytes;
    if (l2Offset < this.metaEnd) {
      throw new CorruptImageError(
        `Cannot read qcow image: L1 entry ${l1Index} points into the header or L1 table (offset ${l2Offset})`,
        { format: "qcow", structure: "L1 table", fileOffset: this.l1TableOffset + l1Index * 8 },
      );
    }
    if (!(l2Offset + bytes <= this.fileEnd)) {
      throw new CorruptImageError(
        `Cannot read qcow image: L2 table at offset ${l2Offset} (L1 entry ${l1Index}) extends past the end of the file (${this.fileEnd} bytes)`,
        { format: "qcow", structure: "L1 table", fileOffset: this.l1TableOffset + l1Index * 8 },
      );
    }
    return this.cache.load(l2Offset, () => readExact(this.file, l2Offset, bytes, "L2 table", "qcow"));
  }

  /** Where guest `offset` lives (see `FormatInstance.getMapping`). */
  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const { l2Span, clusterSize: cs } = this.geo;
    const { l1Index: l1i, spanStart, end, first } = tableSpan(offset, length, l2Span, cs, this.size);
    const l2Offset = this.l1Entry(l1i);
    if (l2Offset === 0) return { kind: "backing", length: end - offset };
    const table = await this.l2Table(l2Offset, l1i);
    const clusterStart = spanStart + first * cs;
    const e = this.l2Entry(table, first);
    // Clusters after the first that continue the same kind of run.
    let k = first + 1;
    const continues = (next: QcowEntry, i: number): boolean => {
      if (e.kind === "unallocated") return next.kind === "unallocated";
      if (e.kind === "data") return next.kind === "data" && next.offset === e.offset + (i - first) * cs;
      return false;
    };
    while (spanStart + k * cs < end && continues(this.l2Entry(table, k), k)) k++;
    const runEnd = Math.min(end, spanStart + k * cs);
    switch (e.kind) {
      case "unallocated":
        return { kind: "backing", length: runEnd - offset };
      case "compressed": {
        const token: QcowCompressedToken = {
          guestCluster: clusterStart,
          fileOffset: e.offset,
          compressedSize: e.compressedSize,
        };
        return { kind: "special", length: runEnd - offset, what: "compressed", fileOffset: e.offset, token };
      }
      case "data":
        if (!Number.isFinite(e.offset) || e.offset % 512 !== 0 || e.offset < this.metaEnd || e.offset + cs > Number.MAX_SAFE_INTEGER) {
          throw new CorruptImageError(
            `Cannot read qcow image: L2 entry for guest offset ${clusterStart} points to a misplaced or misaligned offset ${e.offset}`,
            { format: "qcow", structure: "L2 table", fileOffset: l2Offset + first * 8 },
          );
        }
        return { kind: "data", length: runEnd - offset, file: this.file, fileOffset: e.offset + (offset - clusterStart) };
    }
  }

  /** Decodes a compressed cluster for the engine. */
  async readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    const t = mapping.token as QcowCompressedToken;
    const cs = this.geo.clusterSize;
    let cluster = this.inflated?.key === t.fileOffset ? this.inflated.data : undefined;
    if (!cluster) {
      if (t.compressedSize === 0 || t.fileOffset < this.metaEnd || !(t.fileOffset + t.compressedSize <= this.fileEnd)) {
        throw new CorruptImageError(
          `Cannot read qcow image: compressed cluster at offset ${t.fileOffset} (${t.compressedSize} bytes) lies outside the file (${this.fileEnd} bytes)`,
          { format: "qcow", structure: "compressed cluster", fileOffset: t.fileOffset },
        );
      }
      const z = await readExact(this.file, t.fileOffset, t.compressedSize, "compressed cluster", "qcow");
      cluster = new Uint8Array(cs);
      await inflateQcowCluster(z, cluster, t.fileOffset);
      this.inflated = { key: t.fileOffset, data: cluster };
    }
    const from = offset - t.guestCluster;
    into.set(cluster.subarray(from, from + into.length));
  }

  /**
   * The L2 table that covers L1 entry `l1i` for writing: the cached one, or a new zeroed table
   * whose space is reserved at the end of the file.
   */
  private async tableForWrite(l1i: number): Promise<TableForWrite> {
    const l2Offset = this.l1Entry(l1i);
    if (l2Offset !== 0) return { offset: l2Offset, table: await this.l2Table(l2Offset, l1i), isNew: false };
    const cs = this.geo.clusterSize;
    const at = roundUp(this.fileEnd, cs);
    this.fileEnd = at + roundUp(this.geo.l2Bytes, cs);
    return { offset: at, table: new Uint8Array(this.geo.l2Bytes), isNew: true };
  }

  /**
   * Encodes `entries` from L2 index `first` on and links them: the data written so far is
   * flushed first, so no entry ever names unwritten data.
   */
  private async linkEntries(l1i: number, t: TableForWrite, first: number, entries: QcowEntry[]): Promise<void> {
    const view = new DataView(t.table.buffer, t.table.byteOffset, t.table.byteLength);
    entries.forEach((e, i) => encodeQcowL2Entry(view, (first + i) * 8, e, this.geo.clusterBits));
    await this.link(l1i, t, first * 8, (first + entries.length) * 8, true);
  }

  /** Makes whole clusters from `offset` writable (see `FormatInstance.allocate`). */
  async allocate(offset: number, length: number): Promise<Allocation> {
    this.assertUsable();
    const { l2Span, clusterSize: cs } = this.geo;
    const { l1Index: l1i, spanStart, end, first } = tableSpan(offset, length, l2Span, cs, this.size);
    const t = await this.tableForWrite(l1i);
    let count = 0;
    while (spanStart + (first + count) * cs < end && this.l2Entry(t.table, first + count).kind !== "data") count++;
    if (count === 0) {
      // Already allocated (the engine only asks for unallocated space): nothing to link.
      const m = (await this.getMapping(offset, length)) as DataMapping;
      return { mapping: m, commit: async () => {} };
    }
    const dataOffset = roundUp(this.fileEnd, cs);
    this.fileEnd = dataOffset + count * cs;
    // Reserve the space now: a crash before the link leaves a leak, never a short file.
    await this.file.truncate(this.fileEnd);
    const guestLength = Math.min(count * cs, end - offset);
    const entries: QcowEntry[] = [];
    for (let i = 0; i < count; i++) entries.push({ kind: "data", offset: dataOffset + i * cs });
    return {
      mapping: { kind: "data", length: guestLength, file: this.file, fileOffset: dataOffset },
      commit: () => this.linkEntries(l1i, t, first, entries),
    };
  }

  /**
   * Stores the cluster at `offset` compressed (see `FormatInstance.writeCompressed`). Returns
   * false when the cluster is too large for a stream QEMU can inflate, already allocated, or
   * does not compress.
   */
  async writeCompressed(offset: number, data: Uint8Array): Promise<boolean> {
    this.assertUsable();
    const { l2Span, clusterSize: cs, clusterBits } = this.geo;
    if (cs > QCOW_MAX_COMPRESSED_CLUSTER || offset % cs !== 0 || data.length > cs) return false;
    const l1i = Math.floor(offset / l2Span);
    const first = (offset - l1i * l2Span) / cs;
    const l2Offset = this.l1Entry(l1i);
    if (l2Offset !== 0 && this.l2Entry(await this.l2Table(l2Offset, l1i), first).kind === "data") return false;
    let cluster = data;
    if (data.length < cs) {
      cluster = new Uint8Array(cs);
      cluster.set(data);
    }
    const z = await deflateQcowCluster(cluster, cs);
    if (!z) return false;
    const endBefore = this.fileEnd;
    const t = await this.tableForWrite(l1i);
    const at = this.fileEnd;
    // The offset field has 63 - clusterBits bits.
    if (at + z.length >= 2 ** (63 - clusterBits)) {
      this.fileEnd = endBefore;
      return false;
    }
    await this.file.write(at, z);
    this.fileEnd = at + z.length;
    await this.linkEntries(l1i, t, first, [{ kind: "compressed", offset: at, compressedSize: z.length }]);
    return true;
  }

  /**
   * Unlinks every L2 table, so the whole disk reads through to the backing file, and cuts the
   * file back to `keepEnd` (header, backing file name and L1 table): the emptying of
   * `qemu-img commit`. The zeroed L1 table is durable before the file shrinks, so a crash in
   * between leaves unreferenced space, never an entry naming a cut-off table.
   */
  async makeEmpty(keepEnd: number): Promise<void> {
    await this.clearL1();
    this.inflated = undefined;
    const end = Math.max(keepEnd, this.metaEnd);
    await this.file.truncate(end);
    this.fileEnd = end;
  }

  /** Drops cached tables and the inflated cluster (after a repair rewrote them). */
  override invalidate(): void {
    super.invalidate();
    this.inflated = undefined;
  }

  /** Sets the file end after a repair changed the file's length. */
  setFileLength(n: number): void {
    this.fileEnd = n;
  }

  /** Rewrites L1 entry `index` in memory and in the file. */
  async setL1Entry(index: number, l2Offset: number): Promise<void> {
    encodeQcowL1Entry(this.l1View, index * 8, l2Offset);
    await this.file.write(this.l1TableOffset + index * 8, this.l1.subarray(index * 8, index * 8 + 8));
  }
}
