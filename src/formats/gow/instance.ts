/**
 * An open GOW image: address translation through the block map, slot allocation in
 * first-write order, deferred map updates made durable by `flush`, resize.
 * @module
 */
import type { CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { CorruptImageError, ImageError, formatBytes } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { checkGowImage } from "./check.js";
import { decodeGowHeader, encodeGowMap, gowMapProblem, readGowMap } from "./header.js";
import {
  GOW_BLOCK_SIZE,
  GOW_FREE,
  GOW_MAP_OFFSET,
  GOW_PROVENANCE,
  GowHeaderCodec,
  gowMagicText,
  type GowVersionLayout,
} from "./layout.js";

/** Map entries written per I/O when freeing ranges. */
const FREE_PIECE = 1 << 18;

/** What {@link GowInstance} is built from. */
export interface GowInstanceInit {
  readonly file: IoBackend;
  readonly layout: GowVersionLayout;
  readonly magic: number;
  readonly sizeBlocks: number;
  readonly allocated: number;
  /** Entries of blocks `0..sizeBlocks-1`. */
  readonly map: Uint32Array;
  readonly readOnly: boolean;
  /** The map is inconsistent (read-only opens only): the reason. */
  readonly corrupt?: string;
}

/** One open GOW image. */
export class GowInstance implements FormatInstance {
  readonly format: string;
  readonly allocationUnit = GOW_BLOCK_SIZE;
  /** The zero-block rule: zeros written to a free block allocate nothing (spec §4). */
  readonly skipZeroAllocation = true;
  readonly layout: GowVersionLayout;
  readonly file: IoBackend;
  readonly magic: number;
  private readonly readOnly: boolean;
  private sizeBlocks: number;
  private map: Uint32Array;
  /** Slots handed out, in memory (includes slots whose map entries are not yet durable). */
  private allocated: number;
  /** The allocated counter as last written to the file. */
  private diskAllocated: number;
  /** Blocks whose map entry changed since the last flush. */
  private dirty = new Set<number>();
  private corrupt?: string;

  constructor(init: GowInstanceInit) {
    this.file = init.file;
    this.layout = init.layout;
    this.format = init.layout.name;
    this.magic = init.magic;
    this.sizeBlocks = init.sizeBlocks;
    this.allocated = init.allocated;
    this.diskAllocated = init.allocated;
    this.map = init.map;
    this.readOnly = init.readOnly;
    this.corrupt = init.corrupt;
  }

  get size(): number {
    return this.sizeBlocks * GOW_BLOCK_SIZE;
  }

  private slotOffset(slot: number): number {
    return this.layout.dataBase + slot * GOW_BLOCK_SIZE;
  }

  private badEntry(block: number, slot: number): CorruptImageError {
    return new CorruptImageError(
      `Cannot read ${this.format} image: map entry of block ${block} holds slot ${slot}, but only ${this.allocated} slots are allocated`,
      { format: this.format, structure: "map", fileOffset: GOW_MAP_OFFSET + 4 * block, file: this.file.name },
    );
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const end = Math.min(this.size, offset + length);
    const first = Math.floor(offset / GOW_BLOCK_SIZE);
    const last = Math.ceil(end / GOW_BLOCK_SIZE);
    const slot = this.map[first];
    let b = first + 1;
    if (slot === GOW_FREE) {
      while (b < last && this.map[b] === GOW_FREE) b++;
      return { kind: "zero", length: Math.min(end, b * GOW_BLOCK_SIZE) - offset };
    }
    if (slot >= this.allocated) throw this.badEntry(first, slot);
    // Consecutive blocks in consecutive slots read as one run.
    while (b < last && this.map[b] === slot + (b - first)) b++;
    return {
      kind: "data",
      length: Math.min(end, b * GOW_BLOCK_SIZE) - offset,
      file: this.file,
      fileOffset: this.slotOffset(slot) + (offset % GOW_BLOCK_SIZE),
    };
  }

  /**
   * Hands out the next slots, in first-write order, for the free blocks of the range; the map
   * entries change only in `commit`, after the engine wrote the whole slots (so the rest of a
   * slot reads zeros even when a crashed run left an orphan tail there).
   */
  async allocate(offset: number, length: number): Promise<Allocation> {
    if (this.corrupt) throw this.corruptError();
    const first = offset / GOW_BLOCK_SIZE;
    const want = Math.ceil(length / GOW_BLOCK_SIZE);
    let n = 0;
    while (n < want && this.map[first + n] === GOW_FREE) n++;
    const room = this.sizeBlocks - this.allocated;
    if (n === 0 || room <= 0) {
      if (n === 0) throw new CorruptImageError(`${this.format}: allocation asked for mapped block ${first}`, { format: this.format });
      throw new ImageError(
        "ERR_IMAGE_FULL",
        `Cannot write ${this.format} image: all ${this.allocated} slots of a ${this.sizeBlocks}-block disk are in use (image full)`,
        { format: this.format, file: this.file.name },
      );
    }
    n = Math.min(n, room);
    const slot = this.allocated;
    this.allocated += n;
    return {
      mapping: { kind: "data", length: n * GOW_BLOCK_SIZE, file: this.file, fileOffset: this.slotOffset(slot) },
      commit: async () => {
        for (let i = 0; i < n; i++) {
          this.map[first + i] = slot + i;
          this.dirty.add(first + i);
        }
      },
    };
  }

  private corruptError(): CorruptImageError {
    return new CorruptImageError(`Cannot write ${this.format} image: ${this.corrupt}`, {
      format: this.format,
      structure: "map",
      file: this.file.name,
    });
  }

  /**
   * Data first, then the counter, then the map entries (spec §4 crash order): a crash leaves
   * at worst slots no entry uses (leaks), never an entry past the counter.
   */
  async flush(): Promise<void> {
    if (this.readOnly) return;
    if (this.dirty.size === 0 && this.allocated === this.diskAllocated) {
      await this.file.flush();
      return;
    }
    await this.file.flush();
    if (this.allocated !== this.diskAllocated) {
      await this.writeCounter(this.allocated);
      // The counter is durable before any map entry that uses its slots is written: a
      // volatile disk cache may otherwise keep the entry and lose the counter.
      await this.file.flush();
      this.diskAllocated = this.allocated;
    }
    const blocks = [...this.dirty].sort((a, b) => a - b);
    this.dirty.clear();
    for (let i = 0; i < blocks.length; ) {
      let j = i + 1;
      while (j < blocks.length && blocks[j] === blocks[j - 1] + 1) j++;
      await this.file.write(GOW_MAP_OFFSET + 4 * blocks[i], encodeGowMap(this.map.subarray(blocks[i], blocks[j - 1] + 1)));
      i = j;
    }
    await this.file.flush();
  }

  private async writeCounter(allocated: number): Promise<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, allocated, true);
    await this.file.write(GowHeaderCodec.offsetOf("allocated"), b);
  }

  private async writeSizeField(blocks: number): Promise<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, blocks, true);
    await this.file.write(GowHeaderCodec.offsetOf("size"), b);
  }

  /** Writes FREE into the on-disk map entries `[from, to)`. */
  private async writeFreeEntries(from: number, to: number): Promise<void> {
    const piece = new Uint8Array(Math.min(to - from, FREE_PIECE) * 4).fill(0xff);
    for (let b = from; b < to; b += FREE_PIECE) {
      const n = Math.min(FREE_PIECE, to - b);
      await this.file.write(GOW_MAP_OFFSET + 4 * b, piece.subarray(0, 4 * n));
    }
  }

  /**
   * Resize per spec §4 [decision]: rounds up to whole blocks; grows up to MAXBLOCKS (the new
   * entries are written FREE first); shrinking frees the entries past the new end and never
   * lowers `allocated`, so their slots become leaks that `check` reports.
   */
  async resize(newSize: number): Promise<void> {
    if (this.corrupt) throw this.corruptError();
    const blocks = Math.ceil(newSize / GOW_BLOCK_SIZE);
    if (blocks < 1 || blocks > this.layout.maxBlocks) {
      throw new ImageError(
        "ERR_OUT_OF_RANGE",
        `Cannot resize ${this.format} image to ${formatBytes(newSize)}: the size must be 1 to ${this.layout.maxBlocks} blocks of 64 KiB (at most ${formatBytes(this.layout.maxBlocks * GOW_BLOCK_SIZE)})`,
        { format: this.format, file: this.file.name },
      );
    }
    if (blocks === this.sizeBlocks) return;
    await this.flush();
    const old = this.sizeBlocks;
    if (blocks > old) {
      await this.writeFreeEntries(old, blocks);
      await this.file.flush();
      const map = new Uint32Array(blocks).fill(GOW_FREE);
      map.set(this.map);
      this.map = map;
    } else {
      this.map = this.map.slice(0, blocks);
      await this.writeFreeEntries(blocks, old);
      await this.file.flush();
    }
    await this.writeSizeField(blocks);
    await this.file.flush();
    this.sizeBlocks = blocks;
  }

  async check(repair?: RepairMode): Promise<CheckResult> {
    await this.flush();
    const r = await checkGowImage(this.file, this.layout, this.format, repair);
    if (repair === "all" && !this.readOnly) {
      // The repair may have raised the counter and freed entries: reload both.
      const h = decodeGowHeader(await readExact(this.file, 0, GowHeaderCodec.size, "header", this.format));
      this.allocated = this.diskAllocated = h.allocated;
      this.map = await readGowMap(this.file, 0, this.sizeBlocks, this.format);
      this.corrupt = gowMapProblem(this.map, this.allocated);
    }
    return r;
  }

  async info(): Promise<FormatInfo> {
    let mapped = 0;
    for (let b = 0; b < this.map.length; b++) if (this.map[b] !== GOW_FREE) mapped++;
    const ours = this.magic === this.layout.magic;
    return {
      clusterSize: GOW_BLOCK_SIZE,
      formatSpecific: {
        type: this.format,
        data: {
          version: this.layout.version,
          magic: gowMagicText(this.magic),
          "magic-recognised": ours,
          "block-size": GOW_BLOCK_SIZE,
          "size-blocks": this.sizeBlocks,
          "max-blocks": this.layout.maxBlocks,
          "allocated-slots": this.allocated,
          "mapped-blocks": mapped,
          "header-bytes": this.layout.headerBytes,
          "data-offset": this.layout.dataBase,
          provenance: { ...GOW_PROVENANCE },
        },
      },
    };
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) await this.flush();
    } finally {
      await this.file.close();
    }
  }
}
