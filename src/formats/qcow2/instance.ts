/**
 * An open qcow2 image: address translation (getMapping), allocation with copy-on-write,
 * zero/discard, compressed clusters, feature-bit bookkeeping (dirty, corrupt, autoclear).
 * @module
 */
import type {
  AmendContext,
  BackingReference,
  CheckResult,
  FormatInfo,
  FormatInstance,
  RepairMode,
} from "../../core/format.js";
import { QCOW2_AMEND_OPTIONS, amendQcow2 } from "./amend.js";
import type { Allocation, DataMapping, Mapping, SpecialMapping } from "../../core/mapping.js";
import { CorruptImageError, ImageError, isImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import { Qcow2Allocator } from "./allocator.js";
import { qcow2HeaderWithBacking, writeQcow2HeaderArea } from "./backing.js";
import { qcow2BitmapFlagNames, type Qcow2Bitmap } from "./bitmaps.js";
import type { Qcow2ClusterMap, Qcow2L2Entry, Qcow2WritableL2 } from "./cluster-map.js";
import { qcow2Compress, qcow2Decompress } from "./compression.js";
import { hex, qcow2CorruptIo } from "./errors.js";
import { QCOW2_HDR_OFFSET, qcow2U64Bytes, type Qcow2Header } from "./header.js";
import {
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_COMPRESSION_ZSTD,
  QCOW2_EXTL2_ALL_ALLOC,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DIRTY,
  QCOW2_INCOMPAT_EXTL2,
  QCOW2_L2_RESERVED_HI,
  QCOW2_L2_RESERVED_LO,
  QCOW2_OFLAG_COMPRESSED_HI,
  QCOW2_OFLAG_COPIED_HI,
  QCOW2_OFLAG_ZERO_LO,
  QCOW2_SUBCLUSTERS,
  qcow2CompressedOffsetLimit,
  qcow2DecodeCompressed,
  qcow2EncodeCompressed,
  qcow2EntryOffset,
  qcow2OffsetHi,
  qcow2OffsetLo,
} from "./layout.js";
import { Qcow2Mapper, type Qcow2CompressedToken } from "./mapping.js";
import { Qcow2MetadataOverlap } from "./overlap.js";
import type { Qcow2Refcounts } from "./refcounts.js";
import type { Qcow2Snapshot } from "./snapshots.js";

/** What {@link Qcow2Instance} is built from (see `driver.ts`). */
export interface Qcow2InstanceParts {
  file: IoBackend;
  readOnly: boolean;
  header: Qcow2Header;
  map: Qcow2ClusterMap;
  refcounts: Qcow2Refcounts;
  snapshots: Qcow2Snapshot[];
  snapshotTableBytes: number;
  bitmaps: Qcow2Bitmap[];
  kernel: Kernel;
  /** The image may only be repaired (opened writable with the corrupt bit set). */
  repairOnly: boolean;
  check(inst: Qcow2Instance, repair?: RepairMode): Promise<CheckResult>;
  /** Virtual size when it differs from the header's (a snapshot opened for reading). */
  size?: number;
  /** The external data file, when the image has one (incompatible bit 2). */
  dataFile?: IoBackend;
}

const ALL = QCOW2_EXTL2_ALL_ALLOC;

/** Queued cluster runs to free before a write-back is forced (bounds the queue's memory). */
const MAX_PENDING_FREES = 4096;

/** Bits `[from, to)` of a 32-bit mask. */
function bitRange(from: number, to: number): number {
  if (to <= from) return 0;
  const hi = to >= 32 ? 0xffffffff : ((1 << to) - 1) >>> 0;
  const lo = from >= 32 ? 0xffffffff : ((1 << from) - 1) >>> 0;
  return (hi & ~lo) >>> 0;
}

/** One open qcow2 image. */
export class Qcow2Instance implements FormatInstance {
  readonly format = "qcow2";
  /** Virtual size (changes with {@link resize}). */
  size: number;
  readonly allocationUnit: number;
  /** Compressed clusters are whole clusters, also with extended L2 entries. */
  readonly compressionUnit: number;
  /**
   * allocate() reserves host clusters (refcounts written) and pins its L2 table at once, and
   * commit() writes only its own entries, so data writes of several allocations may overlap.
   * Not with extended L2: two subcluster allocations of one unallocated cluster would each
   * take a fresh host cluster, and the engine tracks ranges in subclusters.
   */
  readonly concurrentAllocation: boolean;
  /** The backing file named by the header (changes with {@link setBacking}). */
  backing?: { name: string; format?: string };
  readonly internalSnapshots = true;
  readonly amendOptions = QCOW2_AMEND_OPTIONS;
  readonly file: IoBackend;
  readonly header: Qcow2Header;
  readonly map: Qcow2ClusterMap;
  readonly refcounts: Qcow2Refcounts;
  readonly snapshots: Qcow2Snapshot[];
  readonly snapshotTableBytes: number;
  readonly bitmaps: Qcow2Bitmap[];
  readonly clusterSize: number;
  readonly clusterBits: number;
  readonly extendedL2: boolean;
  readonly subclusterSize: number;
  readonly kernel: Kernel;
  readonly readOnly: boolean;
  readonly allocator: Qcow2Allocator;
  /** The external data file holding guest data, if any. */
  readonly dataFile?: IoBackend;
  /** The data file is kept a valid raw image (autoclear bit 1): no zero flags, no discard. */
  readonly dataFileRaw: boolean;
  /** Writes refused: the image is (or was found) corrupt. */
  corrupt: boolean;
  private repairOnly: boolean;
  private dirtyByUs = false;
  private lastCompressed?: { key: number; data: Promise<Uint8Array> };
  private readonly checkImpl: Qcow2InstanceParts["check"];
  private readonly mapper: Qcow2Mapper;
  /** The metadata overlap check (also used by writes of in-place clusters). */
  readonly overlap: Qcow2MetadataOverlap;

  constructor(p: Qcow2InstanceParts) {
    this.file = p.file;
    this.header = p.header;
    this.map = p.map;
    this.refcounts = p.refcounts;
    this.snapshots = p.snapshots;
    this.snapshotTableBytes = p.snapshotTableBytes;
    this.bitmaps = p.bitmaps;
    this.kernel = p.kernel;
    this.readOnly = p.readOnly;
    this.repairOnly = p.repairOnly;
    this.checkImpl = p.check;
    this.size = p.size ?? p.header.size;
    this.clusterSize = p.header.clusterSize;
    this.clusterBits = p.header.clusterBits;
    this.extendedL2 = (p.header.incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) !== 0n;
    this.subclusterSize = this.extendedL2 ? this.clusterSize / QCOW2_SUBCLUSTERS : this.clusterSize;
    this.allocationUnit = this.subclusterSize;
    this.compressionUnit = this.clusterSize;
    this.concurrentAllocation = !this.extendedL2;
    this.corrupt = (p.header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n;
    this.dataFile = p.dataFile;
    this.dataFileRaw = !!p.dataFile && (p.header.autoclearFeatures & QCOW2_AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    this.allocator = new Qcow2Allocator(p.refcounts, p.header.clusterBits, !!p.dataFile);
    this.overlap = new Qcow2MetadataOverlap({
      map: p.map,
      refcounts: p.refcounts,
      snapshotsOffset: p.header.snapshotsOffset,
      snapshotTableBytes: p.snapshots.length ? p.snapshotTableBytes : 0,
    });
    this.mapper = new Qcow2Mapper({
      map: p.map,
      kernel: p.kernel,
      file: p.file,
      version: p.header.version,
      subclusterSize: this.subclusterSize,
      dataFile: p.dataFile,
      overlaps: (o, l) => this.overlap.overlaps(o, l),
    });
    if (p.header.backingFile !== undefined) {
      this.backing = { name: p.header.backingFile, format: p.header.backingFormat };
    }
  }

  get lazyRefcounts(): boolean {
    return (this.header.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) !== 0n;
  }

  // ---------------------------------------------------------------- header bits

  /** Writes the incompatible feature field from the in-memory header. */
  async writeIncompatible(): Promise<void> {
    if (this.header.version < 3) return;
    await this.file.write(QCOW2_HDR_OFFSET.incompatibleFeatures, qcow2U64Bytes(this.header.incompatibleFeatures));
  }

  /**
   * Called before any metadata write: refuses corrupt images, sets the dirty bit if lazy. Not
   * a `beginWrites` mark: the bit says the refcounts on disk may lag, which only a metadata
   * change makes true, so an overwrite in place leaves it clear (as in QEMU). The flush that
   * writes the refcounts clears it and re-arms this.
   */
  readonly beforeWrite = async (): Promise<void> => {
    this.assertWritable();
    if (this.lazyRefcounts && !this.dirtyByUs && this.header.version >= 3) {
      this.dirtyByUs = true;
      this.header.incompatibleFeatures |= QCOW2_INCOMPAT_DIRTY;
      await this.writeIncompatible();
      await this.file.flush();
    }
  };

  /** Refuses writes to an image marked corrupt (the engine refuses read-only opens). */
  private assertWritable(): void {
    if (this.corrupt && !this.inRepair) {
      throw new CorruptImageError("Cannot write qcow2 image: it is marked corrupt (repair it with check -r all)", {
        format: "qcow2",
        structure: "header",
      });
    }
  }

  /** True while check(repair) runs on an image that may otherwise not be written. */
  inRepair = false;

  /** Marks the image corrupt after a corruption found while writing, and refuses further writes. */
  private async onWriteError(e: unknown): Promise<void> {
    if (!isImageError(e) || e.code !== "ERR_CORRUPT_IMAGE" || this.readOnly || this.corrupt) return;
    this.corrupt = true;
    if (this.header.version >= 3) {
      this.header.incompatibleFeatures |= QCOW2_INCOMPAT_CORRUPT;
      await this.writeIncompatible().catch(() => {});
    }
  }

  private async guarded<T>(fn: () => Promise<T>): Promise<T> {
    this.assertWritable();
    if (this.repairOnly && !this.inRepair) {
      throw new CorruptImageError("Cannot write qcow2 image: it was opened for repair only", { format: "qcow2" });
    }
    try {
      const result = await fn();
      await this.writeBackIfFull();
      return result;
    } catch (e) {
      await this.onWriteError(e);
      throw e;
    }
  }

  // ---------------------------------------------------------------- metadata write-back

  /**
   * Writes the cached metadata changes in the order that keeps the image consistent at every
   * point: refcount blocks first (every cluster a cached L2 entry references is then counted),
   * a flush, the L2 tables, a flush, and only then the queued refcount drops of clusters those
   * tables stopped referencing. A crash anywhere leaves at worst leaked clusters.
   */
  async writeBackMetadata(): Promise<void> {
    const frees = this.refcounts.takePendingFrees();
    try {
      if (await this.refcounts.writeBack()) await this.file.flush();
      if (await this.map.writeBack()) await this.file.flush();
    } catch (e) {
      for (const [first, count] of frees) this.refcounts.freeLater(first, count);
      throw e;
    }
    if (frees.length === 0) return;
    for (const [first, count] of frees) await this.refcounts.adjust(first, count, -1);
    await this.refcounts.writeBack();
  }

  /** Writes back when a cache holds as many changed tables as it may keep (or many frees wait). */
  async writeBackIfFull(): Promise<void> {
    const map = this.map.l2Cache;
    if (map.dirtyCount >= map.maxTables || this.refcounts.dirtyBlocks >= this.refcounts.cacheCapacity ||
      this.refcounts.pendingFreeCount >= MAX_PENDING_FREES) {
      await this.writeBackMetadata();
    }
  }

  // ---------------------------------------------------------------- reading

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const cs = this.clusterSize;
    const map = this.map;
    const ci = Math.floor(offset / cs);
    const l1i = Math.floor(ci / map.l2Entries);
    const l2i = ci - l1i * map.l2Entries;
    const inCl = offset - ci * cs;
    const tableEnd = (l1i + 1) * map.l2Entries * cs;
    const max = Math.min(length, this.size - offset, tableEnd - offset);
    const l2off = map.l2Offset(l1i);
    if (l2off === 0) return { kind: "backing", length: max };
    const table = await map.l2Table(l2off);
    return this.extendedL2
      ? this.mapper.extended(table, l2i, inCl, max, offset, l2off)
      : this.mapper.standard(table, l2i, inCl, max, offset, l2off);
  }

  async readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    const t = mapping.token as Qcow2CompressedToken;
    const data = await this.decompressed(t);
    const start = offset - t.guestStart;
    into.set(data.subarray(start, start + into.length));
  }

  /** The decoded cluster of a compressed token (the last one is cached). */
  decompressed(t: Qcow2CompressedToken): Promise<Uint8Array> {
    if (this.lastCompressed?.key === t.hostOffset) return this.lastCompressed.data;
    const data = (async () => {
      if (t.hostOffset >= qcow2CompressedOffsetLimit(this.clusterBits)) {
        throw qcow2CorruptIo("read", `compressed cluster offset ${hex(t.hostOffset)} is out of range`, "L2 table");
      }
      const src = await readZeroPadded(this.file, t.hostOffset, t.hostLength);
      const out = new Uint8Array(this.clusterSize);
      if (!(await qcow2Decompress(this.header.compressionType, src, out))) {
        throw qcow2CorruptIo("read", `compressed cluster at ${hex(t.hostOffset)} (${t.hostLength} bytes) does not decompress to ${this.clusterSize} bytes`, "compressed cluster", t.hostOffset);
      }
      return out;
    })();
    const entry = { key: t.hostOffset, data };
    this.lastCompressed = entry;
    data.catch(() => {
      if (this.lastCompressed === entry) this.lastCompressed = undefined;
    });
    return data;
  }

  // ---------------------------------------------------------------- writing

  allocate(offset: number, length: number): Promise<Allocation> {
    return this.guarded(() => this.allocateInner(offset, length));
  }

  /** True when the entry's host cluster can take new data in place (commit only sets flags). */
  private inPlace(e: Qcow2L2Entry): boolean {
    if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) return false;
    if ((e.hi & QCOW2_OFLAG_COPIED_HI) === 0) return false;
    const off = qcow2EntryOffset(e.hi, e.lo);
    if (off === 0 && !this.dataFile) return false;
    return this.extendedL2 || (e.lo & QCOW2_OFLAG_ZERO_LO) !== 0;
  }

  private async allocateInner(offset: number, length: number): Promise<Allocation> {
    const cs = this.clusterSize;
    const sc = this.subclusterSize;
    const map = this.map;
    const ci0 = Math.floor(offset / cs);
    const l1i = Math.floor(ci0 / map.l2Entries);
    const l2i0 = ci0 - l1i * map.l2Entries;
    const inCl = offset - ci0 * cs;
    const tableEnd = (l1i + 1) * map.l2Entries * cs;
    let end = Math.min(offset + length, tableEnd, this.size);
    const l2 = await map.writableL2(l1i);
    try {
      const e0 = map.entry(l2.table, l2i0);
      this.checkWritableEntry(e0, l2, l2i0);
      if (this.inPlace(e0)) {
        end = Math.min(end, (ci0 + 1) * cs);
        const host = qcow2EntryOffset(e0.hi, e0.lo);
        if (!this.dataFile && this.overlap.overlaps(host, cs)) {
          throw qcow2CorruptIo("write", `data cluster ${hex(host)} overlaps metadata`, "L2 table", l2.offset + l2i0 * map.entryBytes);
        }
        const mapping: DataMapping = { kind: "data", length: end - offset, file: this.dataFile ?? this.file, fileOffset: host + inCl };
        return {
          mapping,
          commit: () => this.guarded(async () => {
            try {
              const e = map.entry(l2.table, l2i0);
              if (this.extendedL2) {
                const bits = bitRange(Math.floor(inCl / sc), Math.ceil((end - ci0 * cs) / sc));
                e.bmLo = (e.bmLo | bits) >>> 0;
                e.bmHi = (e.bmHi & ~bits) >>> 0;
              } else {
                e.lo = (e.lo & ~QCOW2_OFLAG_ZERO_LO) >>> 0;
              }
              map.setEntry(l2.table, l2i0, e);
              map.markEntries(l2, l2i0, l2i0 + 1);
            } finally {
              l2.release();
            }
          }),
        };
      }
      // Fresh clusters for a run of entries that all need them.
      let n = 1;
      const cap = Math.max(1, Math.floor((256 << 20) / cs));
      while ((ci0 + n) * cs < end && n < cap) {
        const e = map.entry(l2.table, l2i0 + n);
        this.checkWritableEntry(e, l2, l2i0 + n);
        if (this.inPlace(e)) break;
        n++;
      }
      end = Math.min(end, (ci0 + n) * cs);
      const old: Qcow2L2Entry[] = [];
      for (let k = 0; k < n; k++) old.push(map.entry(l2.table, l2i0 + k));
      // With an external data file a guest cluster lives at its own offset there.
      const host = this.dataFile ? ci0 * cs : await this.allocator.clusters(n);
      // The engine writes only up to the disk's end (the last cluster of a disk whose size is
      // not a cluster multiple) or only the requested subclusters (extended L2), but the file
      // must hold the whole cluster (as qemu writes it; other readers reject a file that ends
      // inside a cluster).
      const partial = (ci0 + n) * cs > this.size || (this.extendedL2 && (inCl !== 0 || end < (ci0 + n) * cs));
      if (!this.dataFile && partial && (await this.file.size()) < host + n * cs) await this.file.truncate(host + n * cs);
      if (this.extendedL2) {
        // The engine writes only the requested subclusters: bring the rest of a partly written
        // shared or compressed cluster over first.
        if (inCl !== 0 || end < (ci0 + 1) * cs) await this.copyForCow(old[0], ci0, host);
        const lastPartial = end < (ci0 + n) * cs;
        if (n > 1 && lastPartial) await this.copyForCow(old[n - 1], ci0 + n - 1, host + (n - 1) * cs);
      }
      const mapping: DataMapping = { kind: "data", length: end - offset, file: this.dataFile ?? this.file, fileOffset: host + inCl };
      return {
        mapping,
        commit: () => this.guarded(async () => {
          try {
            for (let k = 0; k < n; k++) {
              const o = old[k];
              const h = host + k * cs;
              const ne: Qcow2L2Entry = { hi: (QCOW2_OFLAG_COPIED_HI | qcow2OffsetHi(h)) >>> 0, lo: qcow2OffsetLo(h), bmHi: 0, bmLo: 0 };
              if (this.extendedL2) {
                const from = k === 0 ? Math.floor(inCl / sc) : 0;
                const to = k === n - 1 ? Math.ceil((end - (ci0 + k) * cs) / sc) : QCOW2_SUBCLUSTERS;
                const req = bitRange(from, to);
                const partial = req !== ALL;
                if (partial && o.hi & QCOW2_OFLAG_COMPRESSED_HI) {
                  ne.bmLo = ALL;
                } else if (partial && qcow2EntryOffset(o.hi, o.lo) !== 0) {
                  ne.bmLo = (o.bmLo | req) >>> 0;
                  ne.bmHi = (o.bmHi & ~req) >>> 0;
                } else {
                  ne.bmLo = req;
                  ne.bmHi = (o.bmHi & ~req) >>> 0;
                }
              }
              map.setEntry(l2.table, l2i0 + k, ne);
            }
            map.markEntries(l2, l2i0, l2i0 + n);
            this.allocator.release(old);
          } finally {
            l2.release();
          }
        }),
      };
    } catch (e) {
      l2.release();
      throw e;
    }
  }

  /** Refuses to replace an entry that is itself corrupt. */
  private checkWritableEntry(e: Qcow2L2Entry, l2: Qcow2WritableL2, i: number): void {
    if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) return;
    if (this.extendedL2) {
      this.mapper.validateExtended(e, l2.offset, i);
      return;
    }
    if ((e.hi & QCOW2_L2_RESERVED_HI) !== 0 || (e.lo & QCOW2_L2_RESERVED_LO) !== 0) throw this.mapper.corruptEntry(l2.offset, i, "has reserved bits set");
    const off = qcow2EntryOffset(e.hi, e.lo);
    if (off % this.clusterSize !== 0) throw this.mapper.corruptEntry(l2.offset, i, `points at unaligned offset ${hex(off)}`);
    if ((e.lo & QCOW2_OFLAG_ZERO_LO) && this.header.version < 3) throw this.mapper.corruptEntry(l2.offset, i, "has the zero flag in a version 2 image");
    if (off !== 0 && (e.hi & QCOW2_OFLAG_COPIED_HI) && !(e.lo & QCOW2_OFLAG_ZERO_LO)) {
      // A normal writable cluster reached allocate: only a metadata overlap sends it here.
      throw this.mapper.corruptEntry(l2.offset, i, `points at ${hex(off)}, which overlaps metadata`);
    }
  }

  /** Copies the current contents of guest cluster `ci` into a new host cluster (extended L2 COW). */
  private async copyForCow(e: Qcow2L2Entry, ci: number, host: number): Promise<void> {
    const cs = this.clusterSize;
    if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) {
      const d = qcow2DecodeCompressed(e.hi, e.lo, this.clusterBits);
      const data = await this.decompressed({ hostOffset: d.hostOffset, hostLength: d.hostLength, guestStart: ci * cs });
      await this.file.write(host, data);
      return;
    }
    const off = qcow2EntryOffset(e.hi, e.lo);
    if (off === 0 || e.bmLo === 0) return;
    const data = await readZeroPadded(this.file, off, cs);
    await this.file.write(host, data);
  }

  /** Entries of `[offset, offset+length)` limited to one L2 table: [l1i, l2i, count, end]. */
  private span(offset: number, length: number): { l1i: number; l2i: number; ci: number; end: number } {
    const cs = this.clusterSize;
    const ci = Math.floor(offset / cs);
    const l1i = Math.floor(ci / this.map.l2Entries);
    const tableEnd = (l1i + 1) * this.map.l2Entries * cs;
    return { l1i, l2i: ci - l1i * this.map.l2Entries, ci, end: Math.min(offset + length, tableEnd, this.size) };
  }

  zeroRange(offset: number, length: number, unmap: boolean): Promise<number> {
    return this.guarded(async () => {
      // A raw data file must hold the zeros itself: let the engine write them.
      if (this.dataFileRaw) return 0;
      const cs = this.clusterSize;
      const hasBacking = this.backing !== undefined;
      if (this.header.version < 3) {
        if (hasBacking) return 0;
        // Without a backing file an unallocated cluster reads as zeros.
        const { end } = this.span(offset, length);
        const whole = this.wholeClustersEnd(offset, end);
        if (whole <= offset) return 0;
        await this.unlink(offset, whole, () => ({ hi: 0, lo: 0, bmHi: 0, bmLo: 0 }));
        return whole - offset;
      }
      const { l1i, ci, end } = this.span(offset, length);
      if (this.map.l2Offset(l1i) === 0 && !hasBacking) return end - offset;
      if (!this.extendedL2) {
        const whole = this.wholeClustersEnd(offset, end);
        if (whole <= offset) return 0;
        await this.unlink(offset, whole, (o) => {
          const compressed = (o.hi & QCOW2_OFLAG_COMPRESSED_HI) !== 0;
          const off = compressed ? 0 : qcow2EntryOffset(o.hi, o.lo);
          if (compressed || off === 0 || unmap) return { hi: 0, lo: QCOW2_OFLAG_ZERO_LO, bmHi: 0, bmLo: 0 };
          return { hi: o.hi, lo: (o.lo | QCOW2_OFLAG_ZERO_LO) >>> 0, bmHi: 0, bmLo: 0 };
        });
        return whole - offset;
      }
      // Extended L2: whole clusters get all zero bits; a partial cluster gets zero bits for its
      // subclusters when it is unallocated or writable in place.
      const inCl = offset - ci * cs;
      if (inCl !== 0 || end - offset < cs) {
        const stop = Math.min(end, (ci + 1) * cs);
        const l2 = await this.map.writableL2(l1i);
        try {
          const i = ci - l1i * this.map.l2Entries;
          const e = this.map.entry(l2.table, i);
          const off = qcow2EntryOffset(e.hi, e.lo);
          if (e.hi & QCOW2_OFLAG_COMPRESSED_HI) return 0;
          this.mapper.validateExtended(e, l2.offset, i);
          if (off !== 0 && !(e.hi & QCOW2_OFLAG_COPIED_HI)) return 0;
          const bits = bitRange(Math.floor(inCl / this.subclusterSize), Math.ceil((stop - ci * cs) / this.subclusterSize));
          e.bmLo = (e.bmLo & ~bits) >>> 0;
          e.bmHi = (e.bmHi | bits) >>> 0;
          this.map.setEntry(l2.table, i, e);
          this.map.markEntries(l2, i, i + 1);
        } finally {
          l2.release();
        }
        return stop - offset;
      }
      const whole = this.wholeClustersEnd(offset, end);
      await this.unlink(offset, whole, (o) => {
        const compressed = (o.hi & QCOW2_OFLAG_COMPRESSED_HI) !== 0;
        if (compressed || unmap) return { hi: 0, lo: 0, bmHi: ALL, bmLo: 0 };
        return { hi: o.hi, lo: o.lo, bmHi: ALL, bmLo: 0 };
      });
      return whole - offset;
    });
  }

  /** End of the whole clusters in `[offset, end)` (the disk's last cluster counts as whole). */
  private wholeClustersEnd(offset: number, end: number): number {
    const cs = this.clusterSize;
    if (offset % cs !== 0) return offset;
    return end === this.size ? end : end - (end % cs);
  }

  /**
   * Rewrites the entries of whole clusters `[offset, end)` (one L2 table) with `next(old)` and
   * releases the host space of the entries whose storage the new entry no longer references.
   */
  private async unlink(
    offset: number,
    end: number,
    next: (old: Qcow2L2Entry) => Qcow2L2Entry,
  ): Promise<void> {
    const cs = this.clusterSize;
    const { l1i, l2i } = this.span(offset, end - offset);
    if (this.map.l2Offset(l1i) === 0) {
      // Nothing allocated; only a zero flag would need a table.
      const probe = next({ hi: 0, lo: 0, bmHi: 0, bmLo: 0 });
      if (probe.hi === 0 && probe.lo === 0 && probe.bmHi === 0 && probe.bmLo === 0) return;
    }
    const n = Math.ceil((end - offset) / cs);
    const l2 = await this.map.writableL2(l1i);
    try {
      const freed: Qcow2L2Entry[] = [];
      let first = -1;
      let last = -1;
      for (let k = 0; k < n; k++) {
        const i = l2i + k;
        const o = this.map.entry(l2.table, i);
        if (!(o.hi & QCOW2_OFLAG_COMPRESSED_HI)) {
          if (this.extendedL2) this.mapper.validateExtended(o, l2.offset, i);
          else if ((o.hi & QCOW2_L2_RESERVED_HI) !== 0 || (o.lo & QCOW2_L2_RESERVED_LO) !== 0) throw this.mapper.corruptEntry(l2.offset, i, "has reserved bits set");
        }
        const ne = next(o);
        if (ne.hi === o.hi && ne.lo === o.lo && ne.bmHi === o.bmHi && ne.bmLo === o.bmLo) continue;
        const keepsStorage = !(o.hi & QCOW2_OFLAG_COMPRESSED_HI) && qcow2EntryOffset(ne.hi, ne.lo) === qcow2EntryOffset(o.hi, o.lo);
        if (!keepsStorage) freed.push(o);
        this.map.setEntry(l2.table, i, ne);
        if (first < 0) first = i;
        last = i;
      }
      if (first >= 0) this.map.markEntries(l2, first, last + 1);
      this.allocator.release(freed);
    } finally {
      l2.release();
    }
  }

  discard(offset: number, length: number): Promise<void> {
    return this.guarded(async () => {
      if (this.dataFileRaw) return;
      const v3 = this.header.version >= 3;
      const hasBacking = this.backing !== undefined;
      // Version 2 has no zero clusters: a released cluster would read the backing file's data
      // instead of what the guest wrote, so the clusters stay allocated (as with qemu).
      if (!v3 && hasBacking) return;
      let pos = offset;
      const stop = offset + length;
      while (pos < stop) {
        const { end } = this.span(pos, stop - pos);
        const cs = this.clusterSize;
        const from = Math.ceil(pos / cs) * cs;
        const to = end === this.size ? end : end - (end % cs);
        if (to > from) {
          await this.unlink(from, to, (o) => {
            const allocated = (o.hi & QCOW2_OFLAG_COMPRESSED_HI) !== 0 || qcow2EntryOffset(o.hi, o.lo) !== 0;
            if (!(hasBacking || allocated) || !v3) return { hi: 0, lo: 0, bmHi: 0, bmLo: 0 };
            return this.extendedL2 ? { hi: 0, lo: 0, bmHi: ALL, bmLo: 0 } : { hi: 0, lo: QCOW2_OFLAG_ZERO_LO, bmHi: 0, bmLo: 0 };
          });
        }
        pos = end;
      }
    });
  }

  /**
   * Compresses one cluster (a short last cluster padded with zeros); `undefined` when it does
   * not shrink, or where compressed clusters cannot be stored (an external data file).
   */
  async compress(offset: number, data: Uint8Array): Promise<Uint8Array | undefined> {
    const cs = this.clusterSize;
    if (offset % cs !== 0 || this.dataFile) return undefined;
    let src = data;
    if (src.length < cs) {
      src = new Uint8Array(cs);
      src.set(data);
    }
    const packed = await qcow2Compress(this.header.compressionType, src);
    return packed && packed.length < cs ? packed : undefined;
  }

  writeCompressed(offset: number, data: Uint8Array, precompressed?: Uint8Array): Promise<boolean> {
    return this.guarded(async () => {
      const cs = this.clusterSize;
      // Compressed clusters cannot live in an external data file.
      if (offset % cs !== 0 || this.dataFile) return false;
      const packed = precompressed ?? (await this.compress(offset, data));
      if (!packed || packed.length >= cs) return false;
      const { l1i, l2i } = this.span(offset, cs);
      const l2 = await this.map.writableL2(l1i);
      try {
        const old = this.map.entry(l2.table, l2i);
        const host = await this.allocator.compressed(packed.length);
        if (host + packed.length > qcow2CompressedOffsetLimit(this.clusterBits)) {
          throw qcow2CorruptIo("write", `compressed data at ${hex(host)} is beyond what a descriptor can address`, "L2 table");
        }
        // A freed cluster may be reused at the same offset: the decoded cache must not answer.
        this.lastCompressed = undefined;
        await this.file.write(host, packed);
        const [hi, lo] = qcow2EncodeCompressed(host, packed.length, this.clusterBits);
        this.map.setEntry(l2.table, l2i, { hi, lo, bmHi: 0, bmLo: 0 });
        this.map.markEntries(l2, l2i, l2i + 1);
        this.allocator.release([old]);
      } finally {
        l2.release();
      }
      return true;
    });
  }

  /**
   * Changes the virtual size (rounded up to 512 bytes, as qemu requires). Growing enlarges the
   * L1 table when needed (new table written, header switched in one write, old table freed);
   * shrinking first releases every cluster past the new end. The size field is written last.
   */
  resize(newSize: number): Promise<void> {
    return this.guarded(async () => {
      const target = Math.ceil(newSize / 512) * 512;
      if (this.snapshots.length > 0 && this.header.version < 3) {
        throw new ImageError("ERR_UNSUPPORTED_FEATURE", "Cannot resize a version 2 qcow2 image that has snapshots", { format: "qcow2" });
      }
      const cs = this.clusterSize;
      const map = this.map;
      if (target < this.size) {
        // Release whole clusters past the new end, one L2 table at a time; drop empty tables.
        const firstCluster = Math.ceil(target / cs);
        const lastCluster = Math.ceil(this.size / cs);
        for (let l1i = Math.floor(firstCluster / map.l2Entries); l1i * map.l2Entries < lastCluster && l1i < map.l1Size; l1i++) {
          const l2off = map.l2Offset(l1i);
          if (l2off === 0) continue;
          const from = Math.max(firstCluster, l1i * map.l2Entries);
          const to = Math.min(lastCluster, (l1i + 1) * map.l2Entries);
          const oldSize = this.size;
          this.size = Math.max(this.size, to * cs); // unlink works inside the disk
          await this.unlink(from * cs, to * cs, () => ({ hi: 0, lo: 0, bmHi: 0, bmLo: 0 }));
          this.size = oldSize;
          if (from === l1i * map.l2Entries) {
            // Nothing of this table stays: unlink it, then free it.
            const off = map.l2Offset(l1i);
            await map.clearL1Entry(l1i);
            map.l2Cache.drop(off);
            await this.refcounts.adjust(off / cs, 1, -1);
          }
        }
      } else if (target > this.size) {
        const need = Math.ceil(target / cs / map.l2Entries);
        if (need * 8 > 32 * 1024 * 1024) {
          throw new ImageError("ERR_LIMIT_EXCEEDED", `Cannot resize qcow2 image to ${target} bytes: the L1 table would exceed 32 MiB`, { format: "qcow2" });
        }
        if (need > map.l1Size) {
          const clusters = Math.ceil((need * 8) / cs);
          const at = await this.allocator.clusters(clusters);
          const table = new Uint8Array(clusters * cs);
          table.set(map.l1.subarray(0, map.l1Size * 8));
          await this.file.write(at, table);
          // The new table's refcount reaches the file before the header points at it.
          await this.refcounts.writeBack();
          await this.file.flush();
          const hdr = new Uint8Array(12);
          const dv = new DataView(hdr.buffer);
          dv.setUint32(0, need);
          dv.setUint32(4, Math.floor(at / 4294967296));
          dv.setUint32(8, at % 4294967296);
          await this.file.write(QCOW2_HDR_OFFSET.l1Size, hdr);
          const old = { offset: map.l1TableOffset, clusters: Math.ceil((map.l1Size * 8) / cs) };
          map.replaceL1(table.subarray(0, need * 8), at, need);
          this.header.l1Size = need;
          this.header.l1TableOffset = at;
          if (old.clusters > 0) await this.refcounts.adjust(old.offset / cs, old.clusters, -1);
        }
      }
      await this.writeBackMetadata();
      const sz = new Uint8Array(8);
      new DataView(sz.buffer).setBigUint64(0, BigInt(target));
      await this.file.write(24, sz);
      await this.file.flush();
      this.size = target;
      this.header.size = target;
    });
  }

  /**
   * Names `ref` as the backing file (rebase). Everything written so far is flushed first; then
   * the header area (header, extensions with the backing format, name) is written at once.
   */
  setBacking(ref: BackingReference | undefined): Promise<void> {
    return this.guarded(async () => {
      await this.flush();
      const next = qcow2HeaderWithBacking(this.header, ref);
      await writeQcow2HeaderArea(this.file, next);
      Object.assign(this.header, next);
      this.backing = ref ? { name: ref.name, format: ref.format || undefined } : undefined;
    });
  }

  /** `qemu-img amend` for qcow2 (see amend.ts). */
  amend(pairs: ReadonlyArray<readonly [string, string]>, ctx: AmendContext): Promise<void> {
    return amendQcow2(this, pairs, ctx);
  }

  /**
   * Unlinks every cluster (entries become unallocated, so the disk reads through to the backing
   * file) and frees what only this image referenced: the emptying of `qemu-img commit`. An
   * image whose external data file must stay a valid raw image keeps its mapping (it reads the
   * same: the data was committed).
   */
  makeEmpty(): Promise<void> {
    return this.guarded(async () => {
      if (this.dataFileRaw) return;
      const none = { hi: 0, lo: 0, bmHi: 0, bmLo: 0 };
      let pos = 0;
      while (pos < this.size) {
        const { end } = this.span(pos, this.size - pos);
        await this.unlink(pos, end, () => none);
        pos = end;
      }
    });
  }

  // ---------------------------------------------------------------- housekeeping

  async flush(): Promise<void> {
    if (this.readOnly) return;
    // Guest data before the metadata that points at it.
    if (this.dataFile) await this.dataFile.flush();
    try {
      await this.writeBackMetadata();
    } catch (e) {
      // A corrupt refcount met while applying queued frees marks the image, as any write does.
      await this.onWriteError(e);
      throw e;
    }
    await this.file.flush();
    if (this.dirtyByUs) {
      this.header.incompatibleFeatures &= ~QCOW2_INCOMPAT_DIRTY;
      await this.writeIncompatible();
      await this.file.flush();
      this.dirtyByUs = false;
    }
  }

  /** Full consistency check; see `check.ts`. */
  async check(repair?: RepairMode): Promise<CheckResult> {
    // The check reads the file: cached changes go there first.
    if (!this.readOnly) await this.writeBackMetadata();
    this.inRepair = !!repair;
    try {
      const result = await this.checkImpl(this, repair);
      if (repair) {
        await this.writeBackMetadata();
        // A repair rewrites tables in the file: cached copies may be stale.
        this.resetAfterRepair();
      }
      return result;
    } finally {
      this.inRepair = false;
    }
  }

  /** Called by check after a successful repair of an image marked corrupt. */
  async clearCorrupt(): Promise<void> {
    this.corrupt = false;
    this.repairOnly = false;
    if (this.header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) {
      this.header.incompatibleFeatures &= ~QCOW2_INCOMPAT_CORRUPT;
      await this.writeIncompatible();
    }
  }

  /** Drops caches that a repair invalidated. */
  resetAfterRepair(): void {
    this.allocator.resetCompressed();
    this.map.l2Cache.clear();
    this.lastCompressed = undefined;
  }

  async info(): Promise<FormatInfo> {
    const h = this.header;
    const data: Record<string, unknown> = {
      compat: h.version === 2 ? "0.10" : "1.1",
      "compression-type": h.compressionType === QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
    };
    if (h.version >= 3) data["lazy-refcounts"] = this.lazyRefcounts;
    if (this.bitmaps.length > 0) {
      data.bitmaps = this.bitmaps.map((b) => ({ flags: qcow2BitmapFlagNames(b.flags), name: b.name, granularity: 2 ** b.granularityBits }));
    }
    data["refcount-bits"] = 1 << h.refcountOrder;
    if (h.version >= 3) {
      data.corrupt = (h.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n;
      data["extended-l2"] = this.extendedL2;
    }
    if (this.dataFile || h.dataFile !== undefined) {
      if (h.dataFile !== undefined) data["data-file"] = h.dataFile;
      data["data-file-raw"] = (h.autoclearFeatures & QCOW2_AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    }
    const info: FormatInfo = {
      clusterSize: this.clusterSize,
      dirty: (h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) !== 0n,
      formatSpecific: { type: "qcow2", data },
    };
    // Version 3 can keep persistent bitmaps (version 2 has no extensions for them).
    if (h.version >= 3) info.persistentBitmaps = this.bitmaps.map((b) => ({ name: b.name, granularity: 2 ** b.granularityBits }));
    if (this.snapshots.length > 0) {
      info.snapshots = this.snapshots.map((s) => ({
        id: s.id,
        name: s.name,
        vmStateSize: s.vmStateSize,
        dateSec: s.dateSec,
        dateNsec: s.dateNsec,
        vmClockNsec: s.vmClockNsec,
        ...(s.icount !== undefined ? { icount: s.icount } : {}),
      }));
    }
    return info;
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.file.close();
      if (this.dataFile) await this.dataFile.close();
    }
  }
}
