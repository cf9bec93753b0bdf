/**
 * An open bochs image: guest sector → extent (catalog) → sector bit in the extent's bitmap →
 * data sector. Read-only; unwritten extents and sectors read as zeros.
 * @module
 */
import type { FormatInfo, FormatInstance } from "../../core/format.js";
import type { Mapping } from "../../core/mapping.js";
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readZeroPadded } from "../../io/helpers.js";
import { BOCHS_SECTOR, BOCHS_UNALLOCATED } from "./layout.js";

/** What `open` validated. */
export interface BochsState {
  readonly file: IoBackend;
  /** Virtual size in bytes (whole sectors). */
  readonly size: number;
  /** Extent number → index of its stored copy, or {@link BOCHS_UNALLOCATED}. */
  readonly catalog: Uint32Array;
  /** Guest bytes per extent. */
  readonly extentSize: number;
  readonly bitmapSectors: number;
  readonly extentSectors: number;
  /** File offset of stored extent 0. */
  readonly dataOffset: number;
  readonly version: number;
}

export class BochsInstance implements FormatInstance {
  readonly format = "bochs";
  readonly size: number;
  readonly allocationUnit = BOCHS_SECTOR;
  /** The bitmap of the extent read last (sequential reads stay inside one extent). */
  private bitmapCache?: { extent: number; bits: Promise<Uint8Array> };

  constructor(private readonly s: BochsState) {
    this.size = s.size;
  }

  /** File offset of stored extent `index` (its bitmap first). */
  private storedAt(index: number): number {
    return this.s.dataOffset + index * (this.s.bitmapSectors + this.s.extentSectors) * BOCHS_SECTOR;
  }

  private bitmap(extent: number, index: number): Promise<Uint8Array> {
    if (this.bitmapCache?.extent === extent) return this.bitmapCache.bits;
    const bits = readZeroPadded(this.s.file, this.storedAt(index), this.s.bitmapSectors * BOCHS_SECTOR);
    this.bitmapCache = { extent, bits };
    bits.catch(() => {
      if (this.bitmapCache?.bits === bits) this.bitmapCache = undefined;
    });
    return bits;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const s = this.s;
    const extent = Math.floor(offset / s.extentSize);
    const extentEnd = Math.min(this.size, (extent + 1) * s.extentSize, offset + length);
    const index = s.catalog[extent];
    if (index === BOCHS_UNALLOCATED) return { kind: "zero", length: extentEnd - offset };
    const fileOffset = this.storedAt(index);
    if (!Number.isSafeInteger(fileOffset + (s.bitmapSectors + s.extentSectors) * BOCHS_SECTOR)) {
      throw new CorruptImageError(`Cannot read bochs image: catalog entry ${extent} holds the impossible index ${index}`, {
        format: "bochs",
        structure: "catalog",
      });
    }
    const bits = await this.bitmap(extent, index);
    const first = Math.floor((offset - extent * s.extentSize) / BOCHS_SECTOR);
    const isSet = (sector: number) => ((bits[sector >> 3] ?? 0) >> (sector & 7)) & 1;
    const set = isSet(first);
    let sector = first + 1;
    const lastSector = Math.ceil((extentEnd - extent * s.extentSize) / BOCHS_SECTOR);
    while (sector < lastSector && isSet(sector) === set) sector++;
    const runEnd = Math.min(extentEnd, extent * s.extentSize + sector * BOCHS_SECTOR);
    if (!set) return { kind: "zero", length: runEnd - offset };
    const inExtent = offset - extent * s.extentSize;
    return {
      kind: "data",
      length: runEnd - offset,
      file: s.file,
      fileOffset: fileOffset + s.bitmapSectors * BOCHS_SECTOR + inExtent,
    };
  }

  async flush(): Promise<void> {}

  async info(): Promise<FormatInfo> {
    return { noDirtyFlag: true };
  }

  async close(): Promise<void> {
    await this.s.file.close();
  }
}
