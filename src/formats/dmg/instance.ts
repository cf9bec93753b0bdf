/**
 * An open dmg image: a binary search in the chunk table answers each mapping; raw chunks are
 * data in place, zero and ignored chunks (and gaps) read zeros, compressed chunks are decoded
 * whole by `readSpecial` (the last one is kept for sequential reads).
 * @module
 */
import { inflateZlib } from "../../codec/compression.js";
import type { FormatInfo, FormatInstance } from "../../core/format.js";
import type { Mapping, SpecialMapping } from "../../core/mapping.js";
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";
import { unsupportedChunkType, type DmgChunk } from "./chunks.js";
import { DMG_SECTOR, DmgChunkType } from "./layout.js";

export class DmgInstance implements FormatInstance {
  readonly format = "dmg";
  readonly allocationUnit = DMG_SECTOR;
  private last?: { chunk: DmgChunk; data: Promise<Uint8Array> };

  constructor(
    private readonly file: IoBackend,
    readonly size: number,
    private readonly chunks: readonly DmgChunk[],
  ) {}

  /** Index of the first chunk ending after `offset`. */
  private find(offset: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunks[mid].end <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const end = Math.min(this.size, offset + length);
    const i = this.find(offset);
    const c = this.chunks[i];
    if (!c || c.start >= end) return { kind: "zero", length: end - offset };
    if (c.start > offset) return { kind: "zero", length: c.start - offset };
    const len = Math.min(end, c.end) - offset;
    switch (c.type) {
      case DmgChunkType.zero:
      case DmgChunkType.ignore:
        return { kind: "zero", length: len };
      case DmgChunkType.raw:
        return { kind: "data", length: len, file: this.file, fileOffset: c.fileOffset + (offset - c.start) };
      default:
        return { kind: "special", length: len, what: "compressed", token: c };
    }
  }

  private decoded(c: DmgChunk): Promise<Uint8Array> {
    if (this.last?.chunk === c) return this.last.data;
    const data = (async () => {
      if (c.type !== DmgChunkType.zlib) throw unsupportedChunkType(c.type);
      const src = await readExact(this.file, c.fileOffset, c.fileLength, "compressed chunk", "dmg");
      const out = new Uint8Array(c.end - c.start);
      const n = await inflateZlib(src, out);
      if (n !== out.length) {
        throw new CorruptImageError(`Cannot read dmg image: the chunk at offset ${c.fileOffset} does not inflate to ${out.length} bytes`, {
          format: "dmg",
          structure: "compressed chunk",
          fileOffset: c.fileOffset,
        });
      }
      return out;
    })();
    const entry = { chunk: c, data };
    this.last = entry;
    data.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return data;
  }

  async readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    const c = mapping.token as DmgChunk;
    const data = await this.decoded(c);
    const from = offset - c.start;
    into.set(data.subarray(from, from + into.length));
  }

  async flush(): Promise<void> {}

  async info(): Promise<FormatInfo> {
    return { noDirtyFlag: true };
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
