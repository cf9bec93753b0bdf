/**
 * The Block Allocation Table, held in memory as its on-disk bytes (so a changed 4 KiB page can
 * go to the log as is), with the pages changed since the last metadata commit.
 * @module
 */
import { CorruptImageError, LimitExceededError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact, readZeroPadded } from "../../io/helpers.js";
import {
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  SB_BLOCK_NOT_PRESENT,
  SB_BLOCK_PRESENT,
  VHDX_HEADER_SECTION_SIZE,
  VHDX_LOG_SECTOR_SIZE,
  VHDX_PAYLOAD_STATE_NAMES,
  VHDX_SECTOR_BITMAP_BLOCK_SIZE,
  batEntryOffset,
  batEntryState,
  encodeBatEntry,
  type VhdxGeometry,
} from "./layout.js";
import type { VhdxRegion, VhdxReservedRange } from "./region-table.js";

/**
 * Largest BAT vdisk loads: 1 GiB, more than the 64 TiB maximum needs even with 1 MiB blocks
 * (≈ 513 MiB), so only a corrupt header reaches it.
 */
export const VHDX_MAX_BAT_BYTES = 2 ** 30;

/** A 4 KiB sector of metadata to write through the log. */
export interface VhdxMetadataSector {
  readonly fileOffset: number;
  readonly data: Uint8Array;
}

/** One problem found by {@link VhdxBat.scan}. */
export interface VhdxBatProblem {
  readonly index: number;
  readonly message: string;
  /** The entry points into space that other structures use (writing it would damage them). */
  readonly overlaps: boolean;
  /** The entry points (partly) past the end of the file. */
  readonly pastEnd: boolean;
}

/** What {@link VhdxBat.scan} found. */
export interface VhdxBatScan {
  /** First 1 MiB boundary past every block and bitmap the BAT references and the file end. */
  readonly allocationEnd: number;
  readonly problems: VhdxBatProblem[];
}

/** The BAT of an open image. */
export class VhdxBat {
  private view: DataView;
  private readonly dirtyPages = new Set<number>();

  private constructor(
    /** The geometry the entries follow (replaced by {@link regeometry}). */
    public geometry: VhdxGeometry,
    /** File offset of the BAT region. */
    readonly fileOffset: number,
    /** The BAT bytes, a whole number of 4 KiB pages. */
    private raw: Uint8Array,
  ) {
    this.view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  }

  /**
   * Switches to the geometry of a resized disk. Entries the new geometry adds start as
   * NOT_PRESENT, entries it drops are cleared; both are marked changed. The caller has checked
   * that the BAT region holds the new entry count.
   */
  regeometry(geometry: VhdxGeometry): void {
    const oldEntries = this.geometry.batEntries;
    const need = Math.ceil((Math.max(oldEntries, geometry.batEntries) * 8) / VHDX_LOG_SECTOR_SIZE) * VHDX_LOG_SECTOR_SIZE;
    if (need > this.raw.length) {
      const grown = new Uint8Array(need);
      grown.set(this.raw);
      this.raw = grown;
      this.view = new DataView(grown.buffer);
    }
    const [from, to] = oldEntries < geometry.batEntries ? [oldEntries, geometry.batEntries] : [geometry.batEntries, oldEntries];
    for (let i = from; i < to; i++) this.set(i, 0, 0);
    this.geometry = geometry;
  }

  /**
   * Loads the BAT. Throws CorruptImageError when the region is too small for the entries the
   * geometry needs or they lie past the end of the file.
   */
  static async read(io: IoBackend, region: VhdxRegion, geometry: VhdxGeometry, fileSize: number): Promise<VhdxBat> {
    const need = geometry.batEntries * 8;
    if (need > VHDX_MAX_BAT_BYTES) {
      throw new LimitExceededError(`Cannot open vhdx image: BAT of ${formatBytes(need)} exceeds the limit of ${formatBytes(VHDX_MAX_BAT_BYTES)}`, {
        format: "vhdx",
        structure: "BAT",
      });
    }
    if (need > region.length) {
      throw new CorruptImageError(
        `Cannot open vhdx image: BAT region of ${formatBytes(region.length)} is too small for the ${geometry.batEntries} entries a ${formatBytes(geometry.virtualSize)} disk needs`,
        { format: "vhdx", structure: "BAT", fileOffset: region.fileOffset },
      );
    }
    if (region.fileOffset + need > fileSize) {
      throw new CorruptImageError(
        `Cannot open vhdx image: BAT at ${region.fileOffset} (${formatBytes(need)}) extends past the end of the ${formatBytes(fileSize)} file`,
        { format: "vhdx", structure: "BAT", fileOffset: region.fileOffset },
      );
    }
    const pages = Math.ceil(need / VHDX_LOG_SECTOR_SIZE) * VHDX_LOG_SECTOR_SIZE;
    const raw = new Uint8Array(pages);
    if (need > 0) raw.set(await readExact(io, region.fileOffset, need, "BAT", "vhdx"));
    // The rest of the last page belongs to the BAT region too; keep its bytes for page writes.
    if (pages > need) raw.set(await readZeroPadded(io, region.fileOffset + need, pages - need), need);
    return new VhdxBat(geometry, region.fileOffset, raw);
  }

  /** An all-NOT_PRESENT BAT (for tests and create). */
  static empty(geometry: VhdxGeometry, fileOffset: number): VhdxBat {
    return new VhdxBat(geometry, fileOffset, new Uint8Array(Math.ceil((geometry.batEntries * 8) / VHDX_LOG_SECTOR_SIZE) * VHDX_LOG_SECTOR_SIZE));
  }

  /** State bits of entry `i`. */
  state(i: number): number {
    return batEntryState(this.view.getUint32(i * 8, true));
  }

  /** File offset of entry `i` in bytes (-1 when past 2^53). */
  offset(i: number): number {
    return batEntryOffset(this.view.getUint32(i * 8, true), this.view.getUint32(i * 8 + 4, true));
  }

  /** Sets entry `i` and marks its page for the next metadata commit. */
  set(i: number, state: number, fileOffset: number): void {
    const [lo, hi] = encodeBatEntry(state, fileOffset);
    this.view.setUint32(i * 8, lo, true);
    this.view.setUint32(i * 8 + 4, hi, true);
    this.dirtyPages.add(Math.floor((i * 8) / VHDX_LOG_SECTOR_SIZE));
  }

  /** Number of pages changed since the last {@link takeDirty}. */
  get dirtyCount(): number {
    return this.dirtyPages.size;
  }

  /**
   * Copies of the changed pages with their file offsets, highest first; clears the set. A
   * sector bitmap entry always follows the payload entries of its chunk, so in this order a
   * bitmap block is never missing for a PARTIALLY_PRESENT block, even if a crash lands between
   * two log entries of one commit.
   */
  takeDirty(): VhdxMetadataSector[] {
    const out = [...this.dirtyPages].sort((a, b) => b - a).map((p) => ({
      fileOffset: this.fileOffset + p * VHDX_LOG_SECTOR_SIZE,
      data: this.raw.slice(p * VHDX_LOG_SECTOR_SIZE, (p + 1) * VHDX_LOG_SECTOR_SIZE),
    }));
    this.dirtyPages.clear();
    return out;
  }

  /** Payload blocks that hold data now (fully or partially present). */
  countAllocated(): number {
    const g = this.geometry;
    let n = 0;
    for (let b = 0; b < g.payloadBlocks; b++) {
      const s = this.state(b + Math.floor(b / g.chunkRatio));
      if (s === PAYLOAD_BLOCK_FULLY_PRESENT || s === PAYLOAD_BLOCK_PARTIALLY_PRESENT) n++;
    }
    return n;
  }

  /** True when entry `i` describes a sector bitmap block rather than a payload block. */
  isBitmapEntry(i: number): boolean {
    return i % (this.geometry.chunkRatio + 1) === this.geometry.chunkRatio;
  }

  /**
   * Checks every entry: known state, offset past the header section, inside the file, clear of
   * the reserved ranges (log, BAT, metadata), and, with `crossCheck`, not shared by two entries.
   */
  scan(fileSize: number, reserved: readonly VhdxReservedRange[], crossCheck = false): VhdxBatScan {
    const g = this.geometry;
    const problems: VhdxBatProblem[] = [];
    let end = fileSize;
    const used: Array<[start: number, length: number, index: number]> = [];
    for (let i = 0; i < g.batEntries; i++) {
      const state = this.state(i);
      const bitmap = this.isBitmapEntry(i);
      let length: number;
      let what: string;
      if (bitmap) {
        if (state === SB_BLOCK_NOT_PRESENT) continue;
        if (state !== SB_BLOCK_PRESENT) {
          if (g.hasParent) problems.push({ index: i, message: `VHDX BAT entry ${i} (sector bitmap) has invalid state ${state}`, overlaps: false, pastEnd: false });
          continue;
        }
        if (!g.hasParent) continue;
        length = VHDX_SECTOR_BITMAP_BLOCK_SIZE;
        what = "sector bitmap block";
      } else {
        if (!(state in VHDX_PAYLOAD_STATE_NAMES)) {
          problems.push({ index: i, message: `VHDX BAT entry ${i} has invalid state ${state}`, overlaps: false, pastEnd: false });
          continue;
        }
        if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !g.hasParent) {
          problems.push({ index: i, message: `VHDX BAT entry ${i} is PARTIALLY_PRESENT in an image without a parent`, overlaps: false, pastEnd: false });
          continue;
        }
        if (state !== PAYLOAD_BLOCK_FULLY_PRESENT && state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) continue;
        const block = i - Math.floor(i / (g.chunkRatio + 1));
        // Old qemu made files whose last block is only partly there; only what the disk uses counts.
        length = Math.min(g.blockSize, g.virtualSize - block * g.blockSize);
        what = "block";
      }
      const off = this.offset(i);
      if (off < 0) {
        problems.push({ index: i, message: `VHDX BAT entry ${i} points past 2^53`, overlaps: true, pastEnd: true });
        continue;
      }
      if (off < VHDX_HEADER_SECTION_SIZE) {
        problems.push({ index: i, message: `VHDX BAT entry ${i} places its ${what} at ${off}, inside the header section`, overlaps: true, pastEnd: false });
        continue;
      }
      let overlaps = false;
      for (const r of reserved) {
        if (r.length > 0 && off < r.start + r.length && r.start < off + length) {
          problems.push({ index: i, message: `VHDX BAT entry ${i} places its ${what} at ${off}, over the ${r.name}`, overlaps: true, pastEnd: false });
          overlaps = true;
          break;
        }
      }
      if (overlaps) continue;
      if (off + length > fileSize) {
        problems.push({
          index: i,
          message: `VHDX BAT entry ${i} ${what} ends at offset ${off + length}, past the end of the file (${fileSize} bytes); the image has probably been truncated`,
          overlaps: false,
          pastEnd: true,
        });
      }
      end = Math.max(end, off + (bitmap ? VHDX_SECTOR_BITMAP_BLOCK_SIZE : g.blockSize));
      if (crossCheck) used.push([off, length, i]);
    }
    if (crossCheck && used.length > 1) {
      used.sort((a, b) => a[0] - b[0]);
      for (let k = 1; k < used.length; k++) {
        const [ps, pl, pi] = used[k - 1];
        const [cs, , ci] = used[k];
        if (cs < ps + pl) {
          problems.push({ index: ci, message: `VHDX BAT entries ${pi} and ${ci} share file space at ${cs}`, overlaps: true, pastEnd: false });
        }
      }
    }
    const mib = VHDX_SECTOR_BITMAP_BLOCK_SIZE;
    return { allocationEnd: Math.ceil(end / mib) * mib, problems };
  }
}
