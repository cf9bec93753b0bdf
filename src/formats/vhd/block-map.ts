/**
 * Address translation and allocation for dynamic and differencing VHDs: the BAT says where a
 * block lives, the block's sector bitmap says which of its sectors are stored there.
 *
 * Allocation is sector-granular. A new block is placed where the end footer was (after all
 * metadata and blocks), in this order, so that a crash at any point
 * leaves an image that opens (at worst with a leaked block):
 *   1. `allocate`: the footer is written after the new block (the file now ends with a footer);
 *   2. the engine writes the guest data into the block;
 *   3. `commit`: the block's bitmap is written (only the sectors written are marked), then the
 *      BAT entry.
 * @module
 */
import type { Allocation, Mapping } from "../../core/mapping.js";
import { ImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import type { Kernel } from "../../kernel/kernel.js";
import { VHD_BAT_UNALLOCATED, VHD_FOOTER_SIZE } from "./layout.js";

/** Bytes of bitmaps kept in memory (the least recently used are dropped past this). */
const BITMAP_CACHE_BYTES = 8 << 20;

/** The parts of an open dynamic/differencing disk the block map works on. */
export interface VhdBlockMapInit {
  readonly file: IoBackend;
  readonly kernel: Kernel;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly blockSize: number;
  readonly bitmapSize: number;
  readonly batOffset: number;
  /** The BAT; the block map owns it from now on. */
  readonly bat: Uint32Array;
  /** Where the next block goes. */
  readonly freeOffset: number;
  /** Clear bitmap bits read from the parent (differencing) instead of as zeros. */
  readonly differencing: boolean;
  /** The encoded footer to keep at the end of the file. */
  readonly footer: Uint8Array;
  /** File size at open. */
  readonly fileSize: number;
}

/** The BAT and bitmaps of one open dynamic or differencing VHD. */
export class VhdBlockMap {
  readonly file: IoBackend;
  readonly blockSize: number;
  readonly bitmapSize: number;
  readonly batOffset: number;
  readonly bat: Uint32Array;
  /** Where the next block goes (the end footer lives here). */
  freeOffset: number;
  private readonly size: number;
  private readonly kernel: Kernel;
  private readonly differencing: boolean;
  private footer: Uint8Array;
  private readonly bitmaps = new Map<number, Uint8Array>();
  /** The file's size as of the last change the block map made (no stat per allocation). */
  private fileEnd: number;
  private readonly maxCachedBitmaps: number;

  constructor(init: VhdBlockMapInit) {
    this.file = init.file;
    this.kernel = init.kernel;
    this.size = init.size;
    this.blockSize = init.blockSize;
    this.bitmapSize = init.bitmapSize;
    this.batOffset = init.batOffset;
    this.bat = init.bat;
    this.freeOffset = init.freeOffset;
    this.differencing = init.differencing;
    this.footer = init.footer;
    this.fileEnd = init.fileSize;
    this.maxCachedBitmaps = Math.max(16, Math.floor(BITMAP_CACHE_BYTES / init.bitmapSize));
  }

  /** Replaces the footer written at the end of the file from now on. */
  setFooter(footer: Uint8Array): void {
    this.footer = footer;
  }

  /** File offset of block `index`'s bitmap, or undefined when the block is not allocated. */
  blockOffset(index: number): number | undefined {
    const e = this.bat[index];
    return e === VHD_BAT_UNALLOCATED ? undefined : e * 512;
  }

  /** The sector bitmap of allocated block `index` (cached; callers must not modify it). */
  async bitmap(index: number): Promise<Uint8Array> {
    const hit = this.bitmaps.get(index);
    if (hit) {
      this.bitmaps.delete(index);
      this.bitmaps.set(index, hit);
      return hit;
    }
    const at = this.blockOffset(index);
    if (at === undefined) throw new Error(`VHD block ${index} is not allocated`);
    const bm = await readExact(this.file, at, this.bitmapSize, "sector bitmap", "vpc");
    this.remember(index, bm);
    return bm;
  }

  private remember(index: number, bm: Uint8Array): void {
    this.bitmaps.set(index, bm);
    if (this.bitmaps.size > this.maxCachedBitmaps) {
      const oldest = this.bitmaps.keys().next().value as number;
      this.bitmaps.delete(oldest);
    }
  }

  /** See `FormatInstance.getMapping`. */
  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const bs = this.blockSize;
    const end = Math.min(this.size, offset + length);
    let index = Math.floor(offset / bs);
    const inBlock = offset - index * bs;
    const blockAt = this.blockOffset(index);
    if (blockAt === undefined) {
      // Merge the run of unallocated blocks.
      let stop = (index + 1) * bs;
      while (stop < end && this.bat[++index] === VHD_BAT_UNALLOCATED) stop += bs;
      return { kind: this.differencing ? "backing" : "zero", length: Math.min(stop, end) - offset };
    }
    const bm = await this.bitmap(index);
    const blockEnd = Math.min(end, (index + 1) * bs) - index * bs;
    const first = Math.floor(inBlock / 512);
    const last = Math.ceil(blockEnd / 512);
    const set = (bm[first >>> 3] & (0x80 >>> (first & 7))) !== 0;
    const runEnd = set
      ? this.kernel.nextClearBit(bm, first, last, true)
      : this.kernel.nextSetBit(bm, first, last, true);
    const len = Math.min(runEnd * 512, blockEnd) - inBlock;
    if (!set) return { kind: this.differencing ? "backing" : "zero", length: len };
    return { kind: "data", length: len, file: this.file, fileOffset: blockAt + this.bitmapSize + inBlock };
  }

  /**
   * See `FormatInstance.allocate`. Covers at most the rest of one block. Within an allocated
   * block the commit marks the sectors in the bitmap; a new block is set up as described in the
   * module comment.
   */
  async allocate(offset: number, length: number): Promise<Allocation> {
    const bs = this.blockSize;
    const index = Math.floor(offset / bs);
    const inBlock = offset - index * bs;
    const len = Math.min(length, bs - inBlock, this.size - offset);
    const firstSector = inBlock / 512;
    const sectors = Math.ceil(len / 512);
    const existing = this.blockOffset(index);
    if (existing !== undefined) {
      return {
        mapping: { kind: "data", length: len, file: this.file, fileOffset: existing + this.bitmapSize + inBlock },
        commit: async () => {
          const bm = await this.bitmap(index);
          setBits(bm, firstSector, sectors);
          const from = Math.floor(firstSector / 8 / 512) * 512;
          const to = Math.min(this.bitmapSize, Math.ceil((firstSector + sectors) / 8 / 512) * 512);
          await this.file.write(existing + from, bm.subarray(from, to));
        },
      };
    }
    // The block goes where the end footer is, or after it when something unreferenced lies
    // between the last block and the footer (padding, an interrupted allocation): it is then
    // past the end of the file, so its unwritten sectors read as zeros even for readers that
    // ignore the bitmap (QEMU).
    const at = Math.max(this.freeOffset, Math.ceil((this.fileEnd - VHD_FOOTER_SIZE) / 512) * 512);
    if (at / 512 > 0xfffffffe) {
      throw new ImageError("ERR_IMAGE_FULL", `Cannot write vpc image: a block at offset ${at} cannot be recorded in the BAT (32-bit sector numbers)`, {
        format: "vpc",
        structure: "BAT",
      });
    }
    const newEnd = at + this.bitmapSize + bs;
    await this.file.write(newEnd, this.footer);
    this.fileEnd = Math.max(this.fileEnd, newEnd + VHD_FOOTER_SIZE);
    return {
      mapping: { kind: "data", length: len, file: this.file, fileOffset: at + this.bitmapSize + inBlock },
      commit: async () => {
        const bm = new Uint8Array(this.bitmapSize);
        setBits(bm, firstSector, sectors);
        await this.file.write(at, bm);
        const entry = new Uint8Array(4);
        new DataView(entry.buffer).setUint32(0, at / 512);
        await this.file.write(this.batOffset + index * 4, entry);
        this.bat[index] = at / 512;
        this.freeOffset = newEnd;
        this.remember(index, bm);
      },
    };
  }

  /** Forgets cached bitmaps and re-reads the file size (after a repair changed the file). */
  async refresh(): Promise<void> {
    this.bitmaps.clear();
    this.fileEnd = await this.file.size();
  }
}

/** Sets bits `[first, first + count)` of an MSB-first bitmap. */
export function setBits(bm: Uint8Array, first: number, count: number): void {
  let i = first;
  const end = first + count;
  while (i < end && i & 7) {
    bm[i >>> 3] |= 0x80 >>> (i & 7);
    i++;
  }
  while (i + 8 <= end) {
    bm[i >>> 3] = 0xff;
    i += 8;
  }
  while (i < end) {
    bm[i >>> 3] |= 0x80 >>> (i & 7);
    i++;
  }
}
