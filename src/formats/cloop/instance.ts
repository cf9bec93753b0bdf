/**
 * An open cloop image: every block is compressed, so every mapping is `special` and the engine
 * asks `readSpecial` to inflate it (the last block inflated is kept for sequential reads).
 * @module
 */
import { inflateZlib } from "../../codec/compression.js";
import type { FormatInfo, FormatInstance } from "../../core/format.js";
import type { Mapping, SpecialMapping } from "../../core/mapping.js";
import { CorruptImageError } from "../../errors.js";
import type { IoBackend } from "../../io/backend.js";
import { readExact } from "../../io/helpers.js";

/** What `open` validated. */
export interface CloopState {
  readonly file: IoBackend;
  /** Guest bytes per block. */
  readonly blockSize: number;
  readonly blockCount: number;
  /** `blockCount + 1` file offsets, monotonic. */
  readonly offsets: Float64Array;
  /** Largest compressed block in bytes (bounded by validation). */
  readonly largestCompressed: number;
}

export class CloopInstance implements FormatInstance {
  readonly format = "cloop";
  readonly size: number;
  readonly allocationUnit: number;
  private last?: { block: number; data: Promise<Uint8Array> };

  constructor(private readonly s: CloopState) {
    this.size = s.blockCount * s.blockSize;
    this.allocationUnit = s.blockSize;
  }

  async getMapping(offset: number, length: number): Promise<Mapping> {
    if (offset >= this.size) return { kind: "eof", length: 0 };
    const block = Math.floor(offset / this.s.blockSize);
    const end = Math.min(this.size, (block + 1) * this.s.blockSize, offset + length);
    return { kind: "special", length: end - offset, what: "compressed", token: block };
  }

  private inflate(block: number): Promise<Uint8Array> {
    if (this.last?.block === block) return this.last.data;
    const data = (async () => {
      const s = this.s;
      const at = s.offsets[block];
      const src = await readExact(s.file, at, s.offsets[block + 1] - at, "compressed block", "cloop");
      const out = new Uint8Array(s.blockSize);
      const n = await inflateZlib(src, out);
      if (n !== out.length) {
        throw new CorruptImageError(`Cannot read cloop image: block ${block} at offset ${at} does not inflate to ${s.blockSize} bytes`, {
          format: "cloop",
          structure: "compressed block",
          fileOffset: at,
        });
      }
      return out;
    })();
    const entry = { block, data };
    this.last = entry;
    data.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return data;
  }

  async readSpecial(mapping: SpecialMapping, offset: number, into: Uint8Array): Promise<void> {
    const block = mapping.token as number;
    const data = await this.inflate(block);
    const from = offset - block * this.s.blockSize;
    into.set(data.subarray(from, from + into.length));
  }

  async flush(): Promise<void> {}

  async info(): Promise<FormatInfo> {
    return { noDirtyFlag: true };
  }

  async close(): Promise<void> {
    await this.s.file.close();
  }
}
