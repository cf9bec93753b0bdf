/**
 * An open FVD image: address translation through the bitmap (base image or FVD image) and the
 * lookup table (compact images), allocation with journaled metadata, the clean-shutdown flag,
 * resize, amend and the flatten primitives.
 *
 * Metadata durability [decision, spec "Project decisions"]: an allocating write updates the
 * in-memory bitmap and table and queues its journal sectors; `flush` makes the data durable
 * first, then writes the queued sectors and flushes again. A flushed write is therefore never
 * lost, and a journal record never points at data that is not on disk.
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
import { FVD_AMEND_OPTIONS, amendFvd } from "./amend.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { CorruptImageError, ImageError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { FvdBitmap } from "./bitmap.js";
import { checkFvdImage } from "./check.js";
import { encodeFvdHeader, fvdNames, type FvdGeometry } from "./header.js";
import { fvdInfo } from "./info.js";
import { buildFvdJournalSectors, type FvdByteRange } from "./journal.js";
import {
  FVD_EMPTY_TABLE,
  FVD_MAX_CHUNK_INDEX,
  FVD_REGION_ALIGN,
  FVD_SECTOR,
  fvdMinJournalSize,
  fvdRoundUp,
  fvdTableSize,
  type FvdHeader,
} from "./layout.js";
import type { FvdTable } from "./table.js";

/** Zeros written per I/O when clearing regions. */
const ZERO_PIECE = 1 << 20;

/** What {@link FvdInstance} is built from (see the driver's open). */
export interface FvdInstanceInit {
  readonly file: IoBackend;
  /** Where data lives: `file` itself, or the separate data file. */
  readonly dataFile: IoBackend;
  readonly header: FvdHeader;
  readonly geometry: FvdGeometry;
  readonly bitmap?: FvdBitmap;
  readonly table?: FvdTable;
  readonly readOnly: boolean;
  readonly kernel: Kernel;
  readonly copyOnRead: boolean;
  /** clean_shutdown as found at open. */
  readonly cleanAtOpen: boolean;
  /** Unclean without a journal: the flag stays 0 (spec §2.4, "dirty_image"). */
  readonly dirtyImage: boolean;
  /** The data file length at open. */
  readonly dataLength: number;
  /** Journal records applied at open (for info). */
  readonly replayed?: { bitmapRecords: number; tableRecords: number };
}

/** One open FVD image. */
export class FvdInstance implements FormatInstance {
  readonly format = "fvd";
  readonly file: IoBackend;
  readonly dataFile: IoBackend;
  readonly header: FvdHeader;
  readonly readOnly: boolean;
  readonly copyOnRead: boolean;
  readonly cleanAtOpen: boolean;
  readonly replayed?: { bitmapRecords: number; tableRecords: number };
  geo: FvdGeometry;
  bitmap?: FvdBitmap;
  table?: FvdTable;
  private readonly kernel: Kernel;
  private dirtyImage: boolean;
  /** Next physical chunk index (compact images). */
  private nextPhysical = 0;
  /** Current length of the data storage in bytes. */
  private dataLength: number;
  /** Journal sector the next record goes to (RAM only; 0 at every open). */
  private nextJournalSector = 0;
  /** Journal sectors waiting for the next flush, and the chunks whose dirty bit they clear. */
  private pending: Uint8Array[] = [];
  private pendingChunks: number[] = [];
  /** Non-compact images: the data storage has been extended to the disk size (first I/O). */
  private prepared?: Promise<void>;

  constructor(init: FvdInstanceInit) {
    this.file = init.file;
    this.dataFile = init.dataFile;
    this.header = init.header;
    this.geo = init.geometry;
    this.bitmap = init.bitmap;
    this.table = init.table;
    this.readOnly = init.readOnly;
    this.kernel = init.kernel;
    this.copyOnRead = init.copyOnRead;
    this.cleanAtOpen = init.cleanAtOpen;
    this.dirtyImage = init.dirtyImage;
    this.dataLength = init.dataLength;
    this.replayed = init.replayed;
    if (this.table) this.nextPhysical = this.table.maxIndex() + 1;
  }

  get size(): number {
    return this.geo.size;
  }

  /** Copy-on-write works in blocks; without a base image any sector is writable in place. */
  get allocationUnit(): number {
    return this.bitmap ? this.geo.blockSize : FVD_SECTOR;
  }

  get backing(): BackingReference | undefined {
    if (!this.bitmap) return undefined;
    const { baseImg, baseImgFmt } = fvdNames(this.header);
    if (!baseImg) return undefined;
    return baseImgFmt ? { name: baseImg, format: baseImgFmt } : { name: baseImg };
  }

  /** The image still reads part of its data from the base image. */
  get usesBase(): boolean {
    return !!this.bitmap;
  }

  /** Physical chunks handed out (compact images). */
  get usedChunks(): number {
    return this.nextPhysical;
  }

  // ---- address translation ----

  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      const want = this.geo.dataBase + this.geo.size;
      if (this.dataLength < want) {
        await this.dataFile.truncate(want);
        this.dataLength = want;
      }
    })();
    return this.prepared;
  }

  private chunkOffset(chunk: number, p: number): number {
    if (p > FVD_MAX_CHUNK_INDEX || this.geo.dataBase + (p + 1) * this.geo.chunkSize > Number.MAX_SAFE_INTEGER) {
      throw new CorruptImageError(`Cannot read fvd image: table entry of chunk ${chunk} holds the impossible index ${p}`, {
        format: "fvd",
        structure: "table",
        fileOffset: this.geo.tableOffset + 4 * chunk,
      });
    }
    return this.geo.dataBase + p * this.geo.chunkSize;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    const g = this.geo;
    if (offset >= g.size) return { kind: "eof", length: 0 };
    if (!g.compact && !this.readOnly) await this.prepare();
    let end = Math.min(g.size, offset + length);
    const bm = this.bitmap;
    if (bm && offset < bm.baseSize) {
      const b = Math.floor(offset / bm.blockSize);
      const limit = Math.min(bm.blocks, Math.ceil(end / bm.blockSize));
      const runEnd = bm.runEnd(b, limit, this.kernel);
      if (!bm.isSet(b)) return { kind: "backing", length: Math.min(end, runEnd * bm.blockSize, bm.baseSize) - offset };
      if (runEnd < limit) end = Math.min(end, runEnd * bm.blockSize);
    }
    if (!this.table) {
      return { kind: "data", length: end - offset, file: this.dataFile, fileOffset: g.dataBase + offset };
    }
    const t = this.table;
    const cs = g.chunkSize;
    const c0 = Math.floor(offset / cs);
    const cEnd = Math.ceil(end / cs);
    const p0 = t.get(c0);
    let c = c0 + 1;
    if (p0 === FVD_EMPTY_TABLE) {
      while (c < cEnd && t.get(c) === FVD_EMPTY_TABLE) c++;
      return { kind: "zero", length: Math.min(end, c * cs) - offset };
    }
    const base = this.chunkOffset(c0, p0);
    while (c < cEnd && t.get(c) === p0 + (c - c0)) c++;
    return { kind: "data", length: Math.min(end, c * cs) - offset, file: this.dataFile, fileOffset: base + (offset % cs) };
  }

  // ---- allocation ----

  async allocate(offset: number, length: number): Promise<Allocation> {
    const g = this.geo;
    const end = offset + length;
    if (!this.table) {
      // Identity mapping: only the bitmap changes.
      if (!this.readOnly) await this.prepare();
      return {
        mapping: { kind: "data", length, file: this.dataFile, fileOffset: g.dataBase + offset },
        commit: async () => this.commit(offset, end, 0, 0),
      };
    }
    const t = this.table;
    const cs = g.chunkSize;
    // The longest physically contiguous run from `offset`; empty chunks take the next indices.
    const c0 = Math.floor(offset / cs);
    let expect = t.get(c0) === FVD_EMPTY_TABLE ? this.nextPhysical : t.get(c0);
    const p0 = expect;
    let next = this.nextPhysical;
    let pos = offset;
    let firstNew = -1;
    let newCount = 0;
    while (pos < end) {
      const c = Math.floor(pos / cs);
      const cur = t.get(c);
      const p = cur === FVD_EMPTY_TABLE ? next : cur;
      if (p !== expect) break;
      if (cur === FVD_EMPTY_TABLE) {
        if (firstNew < 0) firstNew = c;
        else if (firstNew + newCount !== c) break;
        newCount++;
        next++;
      }
      expect = p + 1;
      pos = Math.min(end, (c + 1) * cs);
    }
    let got = pos - offset;
    const unit = this.allocationUnit;
    if (pos < end && got % unit !== 0) {
      got -= got % unit;
      if (got === 0) {
        throw new UnsupportedFeatureError(
          `Cannot write fvd image: a ${g.blockSize}-byte block at guest offset ${offset} spans chunks that are not contiguous in the file (chunk_size ${cs} is not a multiple of block_size)`,
          { format: "fvd" },
        );
      }
      // Chunks past the shortened run are not taken.
      while (newCount > 0 && (firstNew + newCount - 1) * cs >= offset + got) {
        newCount--;
        next--;
      }
    }
    if (p0 > FVD_MAX_CHUNK_INDEX || next - 1 > FVD_MAX_CHUNK_INDEX) {
      throw new ImageError("ERR_IMAGE_FULL", `Cannot write fvd image: no physical chunk index left (the largest is ${FVD_MAX_CHUNK_INDEX})`, {
        format: "fvd",
        file: this.file.name,
      });
    }
    const fileOffset = this.chunkOffset(c0, p0) + (offset % cs);
    if (newCount > 0) {
      await this.growStorage(g.dataBase + next * cs);
      this.nextPhysical = next;
    }
    const first = firstNew;
    const count = newCount;
    return {
      mapping: { kind: "data", length: got, file: this.dataFile, fileOffset },
      commit: async () => {
        for (let k = 0; k < count; k++) t.setDirty(first + k, p0 + (first - c0) + k);
        await this.commit(offset, offset + got, first, count);
      },
    };
  }

  /** Grows the data storage by `storage_grow_unit` steps until it holds `needEnd` bytes. */
  private async growStorage(needEnd: number): Promise<void> {
    if (needEnd <= this.dataLength) return;
    const used = this.nextPhysical * this.geo.chunkSize;
    const target = Math.max(needEnd, this.geo.dataBase + used + this.geo.growUnit);
    await this.dataFile.truncate(target);
    this.dataLength = target;
  }

  /**
   * Records a completed allocation: bits of `[start, end)` set, table entries
   * `first..first+count-1` already set dirty. Queues the journal sectors, or recycles the
   * journal (metadata written home) when they do not fit.
   */
  private async commit(start: number, end: number, first: number, count: number): Promise<void> {
    let bits: FvdByteRange | undefined;
    const bm = this.bitmap;
    if (bm && start < bm.baseSize && bm.anyClear(start, end, this.kernel)) {
      bits = { start, end: Math.min(end, bm.baseSize) };
      bm.setRange(start, end);
    }
    if (!bits && count === 0) return;
    if (this.geo.journalSize === 0) return; // home pages are written at flush
    const entries = count > 0 ? this.table!.raw.slice(first, first + count) : new Uint32Array(0);
    const sectors = buildFvdJournalSectors(bits, first, entries, this.geo.chunkSize);
    const room = this.geo.journalSize / FVD_SECTOR - this.nextJournalSector - this.pending.length;
    if (sectors.length > room) {
      await this.recycle();
      return;
    }
    this.pending.push(...sectors);
    for (let k = 0; k < count; k++) this.pendingChunks.push(first + k);
  }

  /**
   * Zeroes whole blocks that still read through to the base image by marking them as living in
   * the image, where the image's own storage already reads zeros there (no data written: what a
   * flatten does with the base's zero blocks). Returns 0 elsewhere: the engine writes zeros.
   */
  async zeroRange(offset: number, length: number): Promise<number> {
    const bm = this.bitmap;
    if (!bm || offset >= bm.baseSize || offset % bm.blockSize !== 0) return 0;
    const b = Math.floor(offset / bm.blockSize);
    if (bm.isSet(b)) return 0;
    const limit = Math.min(bm.blocks, Math.ceil((offset + length) / bm.blockSize));
    const runEnd = bm.runEnd(b, limit, this.kernel);
    const end = Math.min(offset + length, runEnd * bm.blockSize, this.size);
    if (end <= offset || !(await this.localReadsZero(offset, end))) return 0;
    await this.markInImage(offset, end);
    return end - offset;
  }

  /** FVD records no changeable base name here: only a flatten (see {@link setBacking}). */
  readonly backingUpdate = "flatten";
  readonly amendOptions = FVD_AMEND_OPTIONS;

  /** `qemu-img update`'s attributes (see amend.ts). */
  amend(pairs: ReadonlyArray<readonly [string, string]>, ctx: AmendContext): Promise<void> {
    return amendFvd(this, pairs, ctx);
  }

  /**
   * Ends a flatten (`ref` undefined, after the engine copied every block the base still held):
   * sets `all_data_in_fvd_img`. A new base name is set with amend `base_img=`, not here.
   */
  async setBacking(ref: BackingReference | undefined): Promise<void> {
    if (ref !== undefined) {
      throw new UnsupportedFeatureError("fvd images can only be flattened (a safe rebase with -b \"\")", { format: "fvd" });
    }
    await this.flush();
    await this.finishFlatten();
  }

  /** Marks `[start, end)` as living in the image without writing data (zero blocks of a flatten). */
  async markInImage(start: number, end: number): Promise<void> {
    await this.commit(start, end, 0, 0);
  }

  /**
   * True when `[start, end)` would read zeros from the image itself if its bitmap bits were set:
   * every chunk empty (compact), or a zero data area (non-compact).
   */
  async localReadsZero(start: number, end: number): Promise<boolean> {
    if (this.table) {
      const cs = this.geo.chunkSize;
      for (let c = Math.floor(start / cs); c * cs < end; c++) if (this.table.get(c) !== FVD_EMPTY_TABLE) return false;
      return true;
    }
    if (!this.readOnly) await this.prepare();
    const buf = await readZeroPadded(this.dataFile, this.geo.dataBase + start, end - start);
    return this.kernel.findNonZero(buf, 0, buf.length) === buf.length;
  }

  // ---- durability ----

  /** Writes the bitmap and table pages that differ from their home copies. */
  private async writeHome(): Promise<void> {
    const g = this.geo;
    if (this.bitmap) {
      for (const page of this.bitmap.takeDirtyPages()) {
        const from = page * FVD_REGION_ALIGN;
        const to = Math.min(from + FVD_REGION_ALIGN, g.bitmapSize);
        if (to > from) await this.file.write(g.bitmapOffset + from, this.bitmap.bits.subarray(from, to));
      }
    }
    if (this.table) {
      this.table.clearAllDirty();
      for (const page of this.table.takeDirtyPages()) {
        const from = page * FVD_REGION_ALIGN;
        const len = Math.min(FVD_REGION_ALIGN, g.tableRegion - from);
        if (len > 0) await this.file.write(g.tableOffset + from, this.table.encodePage(page, len));
      }
    }
  }

  /** Journal full: data durable, metadata home, journal restarts at sector 0. */
  private async recycle(): Promise<void> {
    await this.dataFile.flush();
    await this.writeHome();
    await this.file.flush();
    this.nextJournalSector = 0;
    this.pending = [];
    this.pendingChunks = [];
  }

  private get homeDirty(): boolean {
    return !!this.bitmap?.dirty || !!this.table?.dirty;
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.dataFile.flush();
    let wrote = false;
    if (this.geo.journalSize > 0 && this.pending.length > 0) {
      const buf = new Uint8Array(this.pending.length * FVD_SECTOR);
      this.pending.forEach((s, i) => buf.set(s, i * FVD_SECTOR));
      await this.file.write(this.geo.journalOffset + this.nextJournalSector * FVD_SECTOR, buf);
      this.nextJournalSector += this.pending.length;
      for (const c of this.pendingChunks) this.table!.clearDirty(c);
      this.pending = [];
      this.pendingChunks = [];
      wrote = true;
    } else if (this.geo.journalSize === 0 && this.homeDirty) {
      await this.writeHome();
      wrote = true;
    }
    if (wrote || this.file !== this.dataFile) await this.file.flush();
  }

  /** Rewrites the 4336-byte header at offset 0 (the rest of the header region is untouched). */
  async writeHeader(): Promise<void> {
    await this.file.write(0, encodeFvdHeader(this.header));
  }

  /** Writes zeros over `[offset, offset+length)` of the metadata file. */
  private async zeroRegion(offset: number, length: number): Promise<void> {
    const zeros = new Uint8Array(Math.min(length, ZERO_PIECE));
    for (let pos = 0; pos < length; pos += ZERO_PIECE) {
      await this.file.write(offset + pos, zeros.subarray(0, Math.min(ZERO_PIECE, length - pos)));
    }
  }

  /** Flushes everything and writes the metadata home: after this the journal holds nothing needed. */
  async syncAll(): Promise<void> {
    await this.flush();
    await this.recycle();
  }

  // ---- operations ----

  /**
   * Resize [decision]: the size is rounded up to 512. Growing a compact image grows the table,
   * relocating the journal inside the metadata area when the table needs more room, or refuses
   * when the journal would fall below its minimum. Shrinking clears the table entries past the
   * end (their chunks leak), clips the base range, trims a non-compact data area, and empties
   * the journal so that no old record can bring a cleared entry back.
   */
  async resize(newSize: number): Promise<void> {
    const size = fvdRoundUp(Math.max(newSize, FVD_SECTOR), FVD_SECTOR);
    const g = this.geo;
    if (size === g.size) return;
    await this.syncAll();
    let journalOffset = g.journalOffset;
    let journalSize = g.journalSize;
    let tableRegion = g.tableRegion;
    let entries = g.entries;
    const shrink = size < g.size;
    if (this.table) {
      entries = Math.ceil(size / g.chunkSize);
      const need = fvdTableSize(entries);
      if (need > tableRegion) {
        const avail = journalSize > 0 && journalOffset === g.tableOffset + tableRegion ? tableRegion + journalSize : tableRegion;
        const newJournal = avail - need;
        const minJournal = fvdRoundUp(fvdMinJournalSize(entries), FVD_REGION_ALIGN);
        if (journalSize === 0 || newJournal < minJournal) {
          throw new UnsupportedFeatureError(
            `Cannot resize fvd image to ${formatBytes(size)}: its lookup table of ${entries} chunks needs ${formatBytes(need)}, and the metadata area leaves ${formatBytes(Math.max(0, newJournal))} for the journal (at least ${formatBytes(minJournal)} needed)`,
            { format: "fvd", structure: "table" },
          );
        }
        const oldEnd = g.tableOffset + tableRegion;
        await this.file.write(oldEnd, new Uint8Array(g.tableOffset + need - oldEnd).fill(0xff));
        journalOffset = g.tableOffset + need;
        journalSize = newJournal;
        tableRegion = need;
        await this.zeroRegion(journalOffset, journalSize);
        await this.file.flush();
      }
      if (shrink && size % g.chunkSize !== 0) {
        // The last chunk keeps bytes past the new end: zero them so a later grow reads zeros.
        const c = entries - 1;
        const p = this.table.get(c);
        if (p !== FVD_EMPTY_TABLE) {
          const from = size - c * g.chunkSize;
          await this.dataFile.write(this.chunkOffset(c, p) + from, new Uint8Array(g.chunkSize - from));
          await this.dataFile.flush();
        }
      }
      this.table.resize(entries);
    }
    if (shrink && !this.table && this.dataLength > g.dataBase + size) {
      await this.dataFile.truncate(g.dataBase + size);
      this.dataLength = g.dataBase + size;
    }
    if (!shrink && !this.table) this.prepared = undefined;
    if (this.bitmap && size < this.bitmap.baseSize) {
      this.bitmap.baseSize = size;
      this.bitmap.blocks = Math.ceil(size / this.bitmap.blockSize);
      this.header.base_img_size = size;
    }
    if (shrink && journalSize > 0) await this.zeroRegion(journalOffset, journalSize);
    this.geo = {
      ...g,
      size,
      entries,
      tableRegion,
      journalOffset,
      journalSize,
      baseSize: this.bitmap ? this.bitmap.baseSize : 0,
      blocks: this.bitmap ? this.bitmap.blocks : 0,
    };
    await this.writeHome();
    await this.file.flush();
    if (shrink && this.table) {
      // Chunks past the last one still mapped are free again: cut them off so that reusing them
      // reads zeros (the cleared entries are home and the journal is empty, so none comes back).
      const used = this.table.maxIndex() + 1;
      const end = g.dataBase + used * g.chunkSize;
      if (this.dataLength > end) {
        await this.dataFile.truncate(end);
        await this.dataFile.flush();
        this.dataLength = end;
      }
      this.nextPhysical = used;
    }
    this.header.virtual_disk_size = size;
    this.header.journal_offset = journalOffset;
    this.header.journal_size = journalSize;
    this.nextJournalSector = 0;
    await this.writeHeader();
    await this.file.flush();
  }

  /**
   * Ends a flatten: every bit set and written home, then `all_data_in_fvd_img = 1`. From then on
   * the base image is never read. The caller has pulled every block from the base first.
   */
  async finishFlatten(): Promise<void> {
    if (!this.bitmap) return;
    this.bitmap.setAll();
    await this.syncAll();
    this.header.all_data_in_fvd_img = 1;
    await this.writeHeader();
    await this.file.flush();
    this.bitmap = undefined;
    this.geo = { ...this.geo, usesBitmap: false };
  }

  /** Sets the dirty-image state (`clean_shutdown` written at close when false). */
  setCleanOnClose(clean: boolean): void {
    this.dirtyImage = !clean;
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    if (!this.readOnly) await this.flush();
    return checkFvdImage(this, repair);
  }

  async info(): Promise<FormatInfo> {
    return fvdInfo(this, { dirty: !this.cleanAtOpen, dirtyImage: this.dirtyImage, journalNext: this.nextJournalSector, pending: this.pending.length });
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) {
        await this.flush();
        await this.writeHome();
        await this.file.flush();
        if (!this.dirtyImage) {
          this.header.clean_shutdown = 1;
          await this.writeHeader();
          await this.file.flush();
        }
      }
    } finally {
      if (this.dataFile !== this.file) await this.dataFile.close();
      await this.file.close();
    }
  }
}
