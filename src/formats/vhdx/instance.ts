/**
 * An open VHDX image: address translation through the BAT (and the sector bitmaps of
 * differencing images), allocation at the end of the file, and metadata updates through the
 * log (see journal.ts).
 * @module
 */
import type { BackingReference, CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, DataMapping, Mapping } from "../../core/mapping.js";
import { CorruptImageError, UnsupportedFeatureError, formatBytes } from "../../errors.js";
import { readExact } from "../../io/helpers.js";
import type { IoBackend } from "../../io/backend.js";
import type { Kernel } from "../../kernel/kernel.js";
import type { VhdxBat, VhdxBatScan, VhdxMetadataSector } from "./bat.js";
import { checkVhdx } from "./check.js";
import type { VhdxHeaders } from "./headers.js";
import type { VhdxJournal } from "./journal.js";
import {
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_PRESENT,
  VHDX_HEADER_SECTION_SIZE,
  VHDX_MAX_VIRTUAL_SIZE,
  VHDX_MIB,
  VHDX_SECTOR_BITMAP_BLOCK_SIZE,
  VHDX_VIRTUAL_DISK_SIZE_GUID,
  VhdxVirtualDiskSize,
  bitmapBatIndex,
  payloadBatIndex,
  vhdxGeometry,
  type VhdxGeometry,
} from "./layout.js";
import type { VhdxMetadata } from "./metadata.js";
import type { VhdxRegionTable, VhdxReservedRange } from "./region-table.js";
import { VHDX_BITMAP_PAGE_BITS, VhdxSectorBitmapCache } from "./sector-bitmap.js";
import { vhdxInfo } from "./info.js";

/** How a dirty log found at open was handled. */
export type VhdxLogState = "clean" | "replayed" | "replayed-in-memory";

/** Everything {@link openVhdx} assembled. */
export interface VhdxOpenState {
  /** The file as read (a replay overlay on a read-only open of a dirty image). */
  readonly file: IoBackend;
  /** The underlying file, closed on close. */
  readonly rawFile: IoBackend;
  readonly writable: boolean;
  readonly kernel: Kernel;
  readonly headers: VhdxHeaders;
  readonly regions: VhdxRegionTable;
  /** Replaced when the disk is resized. */
  metadata: VhdxMetadata;
  /** Replaced when the disk is resized. */
  geometry: VhdxGeometry;
  readonly bat: VhdxBat;
  readonly scan: VhdxBatScan;
  /** Ranges no block may use: the log and every region. */
  readonly reserved: readonly VhdxReservedRange[];
  readonly fileSize: number;
  readonly creator: string;
  readonly logState: VhdxLogState;
  /** Entries replayed at open (0 when clean). */
  readonly logEntries: number;
  readonly journal?: VhdxJournal;
  readonly backing?: BackingReference;
}

type BlockClass =
  | { kind: "data"; fileOffset: number }
  | { kind: "zero"; allocated: boolean }
  | { kind: "backing" }
  | { kind: "partial"; fileOffset: number };

/** One open VHDX image. */
export class VhdxInstance implements FormatInstance {
  readonly format = "vhdx";
  /** Virtual size in bytes (changed by {@link resize}). */
  size: number;
  readonly allocationUnit: number;
  readonly backing?: BackingReference;
  /** Zero writes into blocks that read as unallocated zeros need not allocate them. */
  readonly skipZeroAllocation = true;
  /** The file guest data is read from and written to. */
  private readonly dataFile: IoBackend;
  private readonly bitmaps: VhdxSectorBitmapCache;
  /** Known file length, including space reserved by allocations. */
  private fileSize: number;
  /** Where the next block goes (1 MiB aligned, past everything referenced). */
  private allocationEnd: number;
  private failed = false;

  constructor(readonly state: VhdxOpenState) {
    const g = state.geometry;
    this.size = g.virtualSize;
    this.allocationUnit = g.logicalSectorSize;
    this.backing = state.backing;
    this.fileSize = state.fileSize;
    this.allocationEnd = Math.max(state.scan.allocationEnd, Math.ceil(state.fileSize / VHDX_MIB) * VHDX_MIB);
    this.dataFile = state.file;
    this.bitmaps = new VhdxSectorBitmapCache(state.file);
  }

  private get geometry(): VhdxGeometry {
    return this.state.geometry;
  }

  private get bat(): VhdxBat {
    return this.state.bat;
  }

  /** Bytes of the disk that payload block `block` holds (the last one may be short). */
  private blockLength(block: number): number {
    const g = this.geometry;
    return Math.min(g.blockSize, g.virtualSize - block * g.blockSize);
  }

  private corrupt(message: string, batIndex: number): CorruptImageError {
    return new CorruptImageError(`Cannot read vhdx image: ${message}`, {
      format: "vhdx",
      structure: "BAT",
      fileOffset: this.bat.fileOffset + batIndex * 8,
      file: this.state.file.name,
    });
  }

  /** Checks a block or bitmap offset the BAT gives before it is used. */
  private checkedOffset(index: number, length: number, what: string): number {
    const off = this.bat.offset(index);
    if (off < VHDX_HEADER_SECTION_SIZE) {
      throw this.corrupt(`BAT entry ${index} places its ${what} at ${off < 0 ? "an offset past 2^53" : off}, inside the header section`, index);
    }
    if (off + length > this.fileSize) {
      throw this.corrupt(
        `BAT entry ${index} ${what} ends at ${off + length}, past the end of the file (${this.fileSize} bytes); the image has probably been truncated`,
        index,
      );
    }
    return off;
  }

  private classify(block: number): BlockClass {
    const idx = payloadBatIndex(this.geometry, block);
    const state = this.bat.state(idx);
    switch (state) {
      case PAYLOAD_BLOCK_FULLY_PRESENT:
        return { kind: "data", fileOffset: this.checkedOffset(idx, this.blockLength(block), "block") };
      case PAYLOAD_BLOCK_PARTIALLY_PRESENT:
        if (!this.geometry.hasParent) throw this.corrupt(`BAT entry ${idx} is PARTIALLY_PRESENT in an image without a parent`, idx);
        return { kind: "partial", fileOffset: this.checkedOffset(idx, this.blockLength(block), "block") };
      case PAYLOAD_BLOCK_ZERO:
        return { kind: "zero", allocated: true };
      case PAYLOAD_BLOCK_NOT_PRESENT:
        return this.geometry.hasParent ? { kind: "backing" } : { kind: "zero", allocated: false };
      case PAYLOAD_BLOCK_UNDEFINED:
      case PAYLOAD_BLOCK_UNMAPPED:
      case PAYLOAD_BLOCK_UNMAPPED_V095:
        // Contents are undefined by the specification; vdisk (like qemu) reads zeros.
        return { kind: "zero", allocated: false };
      default:
        throw this.corrupt(`BAT entry ${idx} has invalid state ${state}`, idx);
    }
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const bs = this.geometry.blockSize;
    const end = Math.min(this.size, offset + length);
    const firstBlock = Math.floor(offset / bs);
    const within = offset - firstBlock * bs;
    const first = this.classify(firstBlock);
    let covered = Math.min(end, (firstBlock + 1) * bs) - offset;
    if (first.kind === "partial") return this.partialMapping(firstBlock, within, covered, first.fileOffset);
    // Merge the following blocks that map alike (contiguous in the file, for data).
    for (let b = firstBlock + 1; offset + covered < end; b++) {
      const next = this.classify(b);
      if (next.kind !== first.kind) break;
      if (next.kind === "data" && next.fileOffset !== (first as { fileOffset: number }).fileOffset + (b - firstBlock) * bs) break;
      if (next.kind === "zero" && next.allocated !== (first as { allocated: boolean }).allocated) break;
      covered += Math.min(end, (b + 1) * bs) - b * bs;
    }
    switch (first.kind) {
      case "data":
        return { kind: "data", length: covered, file: this.dataFile, fileOffset: first.fileOffset + within };
      case "zero":
        return { kind: "zero", length: covered, allocated: first.allocated };
      case "backing":
        return { kind: "backing", length: covered };
    }
  }

  /** Bitmap geometry of payload block `block`: its bitmap entry and first bit in that block. */
  private bitmapOf(block: number): { sbIndex: number; firstBit: number } {
    const g = this.geometry;
    const chunk = Math.floor(block / g.chunkRatio);
    const sectorsPerBlock = g.blockSize / g.logicalSectorSize;
    return { sbIndex: bitmapBatIndex(g, chunk), firstBit: (block - chunk * g.chunkRatio) * sectorsPerBlock };
  }

  /** The mapping of a partially present block at sector granularity: data where the bit is set. */
  private async partialMapping(block: number, within: number, maxLength: number, blockOffset: number): Promise<Mapping> {
    const lss = this.geometry.logicalSectorSize;
    const { sbIndex, firstBit } = this.bitmapOf(block);
    if (this.bat.state(sbIndex) !== SB_BLOCK_PRESENT) {
      throw this.corrupt(`block ${block} is PARTIALLY_PRESENT but BAT entry ${sbIndex} has no sector bitmap`, sbIndex);
    }
    const sbOffset = this.checkedOffset(sbIndex, VHDX_SECTOR_BITMAP_BLOCK_SIZE, "sector bitmap block");
    const sector = Math.floor(within / lss);
    const bit = firstBit + sector;
    const page = Math.floor(bit / VHDX_BITMAP_PAGE_BITS);
    const pageBase = page * VHDX_BITMAP_PAGE_BITS;
    const limit = Math.min(pageBase + VHDX_BITMAP_PAGE_BITS, firstBit + Math.ceil((within + maxLength) / lss));
    const bits = await this.bitmaps.page(sbOffset + page * 4096);
    const rel = bit - pageBase;
    const present = ((bits[rel >>> 3] >>> (rel & 7)) & 1) === 1;
    const k = this.state.kernel;
    const relEnd = present ? k.nextClearBit(bits, rel, limit - pageBase, false) : k.nextSetBit(bits, rel, limit - pageBase, false);
    const len = Math.min(maxLength, (sector + relEnd - rel) * lss - within);
    if (!present) return { kind: "backing", length: len };
    return { kind: "data", length: len, file: this.dataFile, fileOffset: blockOffset + within };
  }

  /**
   * A write session needs new FileWriteGuid and DataWriteGuid values in both headers before
   * anything changes (once per open, as the specification asks; flushes do not end it). The
   * engine writes guest data into allocated blocks itself, so this is the only place that
   * sees every first change.
   */
  async beginWrites(): Promise<void> {
    await this.state.journal?.beginDataWrite();
  }

  /** Refuses metadata changes the image cannot take (the engine refuses read-only opens). */
  private assertWritable(what: string): void {
    if (!this.state.journal?.canLog) {
      throw new UnsupportedFeatureError(`Cannot ${what}: the vhdx image has no log region, so its metadata cannot be updated safely`, {
        format: "vhdx",
      });
    }
    if (this.failed) {
      throw new CorruptImageError(`Cannot ${what}: an earlier vhdx metadata update failed; the image is left as the log recorded it`, {
        format: "vhdx",
      });
    }
  }

  /** Reserves `length` bytes at the next 1 MiB boundary and grows the file over them (zeros). */
  private async reserve(length: number): Promise<number> {
    const at = this.allocationEnd;
    this.allocationEnd = Math.ceil((at + length) / VHDX_MIB) * VHDX_MIB;
    if (this.fileSize < at + length) {
      await this.dataFile.truncate(at + length);
      this.fileSize = at + length;
    }
    return at;
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    this.assertWritable("write");
    const g = this.geometry;
    const block = Math.floor(offset / g.blockSize);
    const within = offset - block * g.blockSize;
    const blockLen = this.blockLength(block);
    const len = Math.min(length, blockLen - within);
    const idx = payloadBatIndex(g, block);
    const state = this.bat.state(idx);
    const mapping = (fileOffset: number): DataMapping => ({ kind: "data", length: len, file: this.dataFile, fileOffset: fileOffset + within });

    if (state === PAYLOAD_BLOCK_FULLY_PRESENT) {
      return { mapping: mapping(this.checkedOffset(idx, blockLen, "block")), commit: async () => {} };
    }
    if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      const at = this.checkedOffset(idx, blockLen, "block");
      return {
        mapping: mapping(at),
        commit: async () => {
          await this.markSectors(block, within, len);
          await this.maybeWriteBack();
        },
      };
    }
    // Any other state reads as zeros or as the parent: give the block fresh (zeroed) space.
    const partial = g.hasParent && state === PAYLOAD_BLOCK_NOT_PRESENT && !(within === 0 && len === blockLen);
    const at = await this.reserve(g.blockSize);
    let newBitmap: number | undefined;
    const { sbIndex } = this.bitmapOf(block);
    if (partial && this.bat.state(sbIndex) !== SB_BLOCK_PRESENT) newBitmap = await this.reserve(VHDX_SECTOR_BITMAP_BLOCK_SIZE);
    return {
      mapping: mapping(at),
      commit: async () => {
        if (partial) {
          if (newBitmap !== undefined) this.bat.set(sbIndex, SB_BLOCK_PRESENT, newBitmap);
          // Bits left from an earlier life of the block (before a discard) must not show
          // the fresh, zeroed space instead of the parent.
          await this.markSectors(block, 0, blockLen, false);
          await this.markSectors(block, within, len);
          this.bat.set(idx, PAYLOAD_BLOCK_PARTIALLY_PRESENT, at);
        } else {
          this.bat.set(idx, PAYLOAD_BLOCK_FULLY_PRESENT, at);
        }
        await this.maybeWriteBack();
      },
    };
  }

  /** Sets (or clears) the sector bitmap bits of `[within, within+len)` of `block`. */
  private async markSectors(block: number, within: number, len: number, value = true): Promise<void> {
    const lss = this.geometry.logicalSectorSize;
    const { sbIndex, firstBit } = this.bitmapOf(block);
    const sbOffset = this.checkedOffset(sbIndex, VHDX_SECTOR_BITMAP_BLOCK_SIZE, "sector bitmap block");
    await this.bitmaps.setBits(sbOffset, firstBit + Math.floor(within / lss), firstBit + Math.ceil((within + len) / lss), value);
  }

  /** Whole blocks inside `[offset, offset+length)` (the disk's short last block counts when reached). */
  private wholeBlocks(offset: number, length: number): [first: number, end: number] {
    const bs = this.geometry.blockSize;
    const first = Math.ceil(offset / bs);
    const stop = offset + length >= this.size ? Math.ceil(this.size / bs) : Math.floor((offset + length) / bs);
    return [first, Math.max(first, stop)];
  }

  /** Sets the state of whole blocks (their space is abandoned, as qemu does). */
  private async setBlocks(first: number, end: number, state: number): Promise<void> {
    if (end <= first) return;
    for (let b = first; b < end; b++) {
      const idx = payloadBatIndex(this.geometry, b);
      if (this.bat.state(idx) !== state || this.bat.offset(idx) !== 0) this.bat.set(idx, state, 0);
      await this.maybeWriteBack();
    }
  }

  async zeroRange(offset: number, length: number): Promise<number> {
    this.assertWritable("write zeroes");
    // Fixed images keep every block allocated: the engine writes zeros into them instead.
    if (this.state.metadata.leaveBlocksAllocated || offset % this.geometry.blockSize !== 0) return 0;
    const [first, end] = this.wholeBlocks(offset, length);
    if (end <= first) return 0;
    await this.setBlocks(first, end, PAYLOAD_BLOCK_ZERO);
    return Math.min(this.size, end * this.geometry.blockSize) - offset;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.assertWritable("discard");
    if (this.state.metadata.leaveBlocksAllocated) return;
    const [first, end] = this.wholeBlocks(offset, length);
    // ZERO, never NOT_PRESENT: in a differencing image that would show the parent's data instead
    // of what the guest wrote (and ZERO reads as zeros for every reader, NOT_PRESENT only for
    // qemu and vdisk in an image without a parent).
    await this.setBlocks(first, end, PAYLOAD_BLOCK_ZERO);
  }

  private get pendingSectors(): number {
    return this.bat.dirtyCount + this.bitmaps.dirtyCount;
  }

  /** Commits pending metadata when a log entry's worth has gathered. */
  private async maybeWriteBack(): Promise<void> {
    if (this.pendingSectors >= 64) await this.writeBack();
  }

  /** Writes every pending metadata sector through the log (bitmaps first, then the BAT). */
  private async writeBack(): Promise<void> {
    if (this.pendingSectors === 0) return;
    const sectors = [...this.bitmaps.takeDirty(), ...this.bat.takeDirty()];
    try {
      await this.state.journal!.commit(sectors, this.fileSize);
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  /**
   * Changes the virtual size (rounded up to the logical sector). Growing needs room in the BAT
   * region (vdisk does not move the BAT) and reads zeros in the new range; shrinking drops the
   * blocks past the end. Differencing images cannot be resized. One logged commit: BAT entries
   * first and the size last when growing, the size first when shrinking.
   */
  async resize(newSize: number): Promise<void> {
    this.assertWritable("resize");
    const g = this.geometry;
    const md = this.state.metadata;
    if (g.hasParent) throw new UnsupportedFeatureError("Cannot resize a differencing vhdx image", { format: "vhdx" });
    const size = Math.ceil(newSize / g.logicalSectorSize) * g.logicalSectorSize;
    if (size > VHDX_MAX_VIRTUAL_SIZE) throw new RangeError(`Cannot resize a vhdx image to ${size} bytes: the limit is 64 TiB`);
    if (size === this.size) return;
    const g2 = vhdxGeometry(size, g.blockSize, g.logicalSectorSize, false);
    const region = this.state.regions.bat;
    if (g2.batEntries * 8 > region.length) {
      throw new UnsupportedFeatureError(
        `Cannot grow this vhdx image to ${formatBytes(size)}: its BAT region of ${formatBytes(region.length)} holds ${Math.floor(region.length / 8)} entries and the new size needs ${g2.batEntries} (vdisk does not move the BAT)`,
        { format: "vhdx" },
      );
    }
    await this.writeBack();
    const grow = size > this.size;
    if (grow && this.size % g.blockSize !== 0) {
      // The old last block may hold bytes past the old end (from before a shrink): zero them.
      const last = Math.floor(this.size / g.blockSize);
      const idx = payloadBatIndex(g, last);
      if (this.bat.state(idx) === PAYLOAD_BLOCK_FULLY_PRESENT) {
        const within = this.size - last * g.blockSize;
        const end = Math.min(g.blockSize, size - last * g.blockSize);
        await this.dataFile.write(this.bat.offset(idx) + within, new Uint8Array(end - within));
        this.fileSize = Math.max(this.fileSize, this.bat.offset(idx) + end);
      }
    }
    this.bat.regeometry(g2);
    if (grow && md.leaveBlocksAllocated) {
      for (let b = g.payloadBlocks; b < g2.payloadBlocks; b++) {
        this.bat.set(payloadBatIndex(g2, b), PAYLOAD_BLOCK_FULLY_PRESENT, await this.reserve(g2.blockSize));
      }
    }
    const sizeSectors = await this.virtualSizeSectors(size);
    const bat = this.bat.takeDirty();
    await this.state.journal!.commit(grow ? [...bat, ...sizeSectors] : [...sizeSectors, ...bat], this.fileSize);
    this.state.geometry = g2;
    this.state.metadata = { ...md, virtualSize: size };
    this.size = size;
  }

  /** The metadata sectors holding the virtual disk size item, with `size` written in. */
  private async virtualSizeSectors(size: number): Promise<VhdxMetadataSector[]> {
    const region = this.state.regions.metadata;
    const entry = this.state.metadata.entries.find((e) => e.guid === VHDX_VIRTUAL_DISK_SIZE_GUID)!;
    const at = region.fileOffset + entry.offset;
    const first = Math.floor(at / 4096) * 4096;
    const span = Math.ceil((at + 8 - first) / 4096) * 4096;
    const buf = await readExact(this.state.file, first, span, "metadata virtual disk size", "vhdx");
    VhdxVirtualDiskSize.encode({ size }, buf, at - first);
    const out: VhdxMetadataSector[] = [];
    for (let o = 0; o < span; o += 4096) out.push({ fileOffset: first + o, data: buf.slice(o, o + 4096) });
    return out;
  }

  async flush(): Promise<void> {
    if (!this.state.writable) return;
    if (this.failed) {
      // Keep the log named in the headers: the next open replays its last complete entry,
      // which finishes whatever the failed commit left half-applied.
      await this.state.rawFile.flush();
      this.assertWritable("flush");
    }
    await this.writeBack();
    await this.state.journal?.closeLog();
    await this.state.rawFile.flush();
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    if (repair) await this.flush();
    return checkVhdx(this.state, repair, () => this.bitmaps.dropClean());
  }

  async info(): Promise<FormatInfo> {
    return vhdxInfo(this.state);
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.state.rawFile.close();
    }
  }
}
