/**
 * FLAT / VMFS extents (guest bytes stored verbatim from a start offset of a file) and ZERO
 * extents (no file; read as zeros).
 * @module
 */
import type { Mapping } from "../../core/mapping.js";
import type { IoBackend } from "../../io/backend.js";
import type { VmdkExtent, VmdkExtentInfo } from "./extent.js";

/** A flat extent: guest byte `rel` lives at `offset + rel` of `file`. */
export class VmdkFlatExtent implements VmdkExtent {
  constructor(
    readonly file: IoBackend,
    readonly size: number,
    private readonly offset: number,
    private readonly type: string,
    readonly writable: boolean,
  ) {}

  info(): VmdkExtentInfo {
    return { fileName: this.file.name, type: this.type, size: this.size, compressed: false };
  }

  async getMapping(rel: number, length: number): Promise<Mapping> {
    return { kind: "data", file: this.file, fileOffset: this.offset + rel, length };
  }

  async check(firstSector: number): Promise<string | undefined> {
    // QEMU looks at the extent's start only: it must lie inside the file.
    if (this.size > 0 && this.offset >= (await this.file.size())) {
      return `ERROR: cluster offset for sector ${firstSector} points after EOF`;
    }
    return undefined;
  }

  async flush(): Promise<void> {
    if (this.writable) await this.file.flush();
  }
}

/** A ZERO extent: no file, reads as zeros, cannot be written. */
export class VmdkZeroExtent implements VmdkExtent {
  readonly writable = false;
  constructor(readonly size: number) {}

  info(): VmdkExtentInfo {
    return { type: "ZERO", size: this.size, compressed: false };
  }

  async getMapping(_rel: number, length: number): Promise<Mapping> {
    return { kind: "zero", length, allocated: true };
  }

  async check(): Promise<string | undefined> {
    return undefined;
  }

  async flush(): Promise<void> {}
}
