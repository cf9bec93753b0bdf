/**
 * One open VDI: the block map translates guest blocks to data-area blocks.
 *
 * New blocks are appended to the data area. Writes are ordered so that a crash leaves at worst
 * a leaked block: the file is extended to hold the whole block, the engine writes the data,
 * then `blocksAllocated` is raised in the header, and only then does the block map entry point
 * at the block (an entry never points at a block the header does not count).
 * @module
 */
import type { CheckResult, FormatInfo, FormatInstance, RepairMode } from "../../core/format.js";
import type { Allocation, Mapping } from "../../core/mapping.js";
import { formatUuid } from "../../codec/uuid.js";
import { ImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { checkVdi } from "./check.js";
import { vdiWriteBlocked, type VdiOpened } from "./header.js";
import { VDI_BLOCKS_ALLOCATED_OFFSET, VDI_DISCARDED, VDI_UNALLOCATED, VdiImageType, type VdiHeader } from "./layout.js";

/** The {@link FormatInstance} of VDI. */
export class VdiInstance implements FormatInstance {
  readonly format = "vdi";
  readonly size: number;
  readonly allocationUnit: number;
  readonly file: IoBackend;
  readonly readOnly: boolean;
  header: VdiHeader;
  /** Block map entries held in memory (entries past its length read as unallocated). */
  bmap: Uint32Array;
  writeBlocker?: string;
  /** Index the next new block gets in the data area. */
  nextIndex: number;

  constructor(file: IoBackend, readOnly: boolean, opened: VdiOpened) {
    this.file = file;
    this.readOnly = readOnly;
    this.header = opened.header;
    this.size = opened.size;
    this.bmap = opened.bmap;
    this.writeBlocker = opened.writeBlocker;
    this.allocationUnit = opened.header.blockSize;
    this.nextIndex = this.computeNextIndex();
  }

  /** `blocksAllocated`, or past the highest block in use if the header undercounts. */
  computeNextIndex(): number {
    let max = -1;
    const limit = this.header.blocksInImage;
    for (let i = 0; i < this.bmap.length; i++) {
      const e = this.bmap[i];
      if (e < VDI_DISCARDED && e < limit && e > max) max = e;
    }
    return Math.max(this.header.blocksAllocated, max + 1);
  }

  private entry(index: number): number {
    return index < this.bmap.length ? this.bmap[index] : VDI_UNALLOCATED;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const bs = this.header.blockSize;
    const end = Math.min(this.size, offset + length);
    let index = Math.floor(offset / bs);
    const first = this.entry(index);
    let stop = (index + 1) * bs;
    if (first >= VDI_DISCARDED) {
      while (stop < end && this.entry(index + 1) >= VDI_DISCARDED) {
        // Past the entries held in memory everything is unallocated: jump to the end.
        if (index + 1 >= this.bmap.length) return { kind: "zero", length: end - offset };
        index++;
        stop += bs;
      }
      return { kind: "zero", length: Math.min(stop, end) - offset };
    }
    // Merge blocks stored one after the other.
    let expect = first + 1;
    while (stop < end && this.entry(index + 1) === expect && expect < this.header.blocksInImage) {
      index++;
      expect++;
      stop += bs;
    }
    const inBlock = offset % bs;
    return {
      kind: "data",
      length: Math.min(stop, end) - offset,
      file: this.file,
      fileOffset: this.header.offsetData + first * bs + inBlock,
      // An entry past the image's blocks is corrupt (QEMU reads it anyway; so does vdisk), but a
      // write must not land there: "shared" makes the engine allocate a fresh block instead.
      ...(first >= this.header.blocksInImage ? { shared: true } : {}),
    };
  }

  async allocate(offset: number, length: number): Promise<Allocation> {
    if (this.writeBlocker) throw vdiWriteBlocked(this.writeBlocker);
    const bs = this.header.blockSize;
    const index = offset / bs;
    let count = 1;
    while (count * bs < length && this.entry(index + count) >= VDI_DISCARDED) count++;
    const first = this.nextIndex;
    if (first + count > this.header.blocksInImage) {
      count = this.header.blocksInImage - first;
      if (count <= 0) {
        throw new ImageError("ERR_IMAGE_FULL", `Cannot write vdi image: all ${this.header.blocksInImage} data blocks are in use (run check -r leaks)`, {
          format: "vdi",
        });
      }
    }
    const dataAt = this.header.offsetData + first * bs;
    const dataEnd = dataAt + count * bs;
    const len = Math.min(length, count * bs);
    // The file holds whole blocks: when the engine will not write up to the end of the last
    // block (the disk ends inside it), the file is extended first.
    if (len < count * bs && (await this.file.size()) < dataEnd) await this.file.truncate(dataEnd);
    return {
      mapping: { kind: "data", length: len, file: this.file, fileOffset: dataAt },
      commit: async () => {
        const allocated = first + count;
        const hdr = new Uint8Array(4);
        new DataView(hdr.buffer).setUint32(0, allocated, true);
        await this.file.write(VDI_BLOCKS_ALLOCATED_OFFSET, hdr);
        const entries = new Uint8Array(count * 4);
        const dv = new DataView(entries.buffer);
        for (let i = 0; i < count; i++) dv.setUint32(i * 4, first + i, true);
        await this.file.write(this.header.offsetBmap + index * 4, entries);
        for (let i = 0; i < count; i++) this.bmap[index + i] = first + i;
        this.header = { ...this.header, blocksAllocated: allocated };
        this.nextIndex = allocated;
      },
    };
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.file.flush();
  }

  check(repair?: RepairMode): Promise<CheckResult> {
    return checkVdi(this, repair);
  }

  async info(): Promise<FormatInfo> {
    const h = this.header;
    return {
      clusterSize: h.blockSize,
      formatSpecific: {
        type: "vdi",
        data: {
          "image-type": h.imageType === VdiImageType.static ? "static" : "dynamic",
          uuid: formatUuid(h.uuidImage, true),
          "last-snapshot-uuid": formatUuid(h.uuidLastSnap, true),
          "blocks-in-image": h.blocksInImage,
          "blocks-allocated": h.blocksAllocated,
        },
      },
    };
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
