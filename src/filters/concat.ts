/**
 * Several devices one after another as one device (`qemu-img convert` with several sources):
 * guest offset 0 of the second part follows the last byte of the first. Read-only view: the
 * parts are only read.
 * @module
 */
import type { BlockDevice, Extent, WriteZeroesOptions } from "../core/block-device.js";
import { READ_ONLY_CAPABILITIES, type DeviceCapabilities } from "../core/capabilities.js";
import type { CheckResult, FormatInfo } from "../core/format.js";
import { ImageError, UnsupportedFeatureError } from "../errors.js";

export class ConcatDevice implements BlockDevice {
  readonly format: string;
  readonly size: number;
  readonly readOnly = true;
  readonly name?: string;
  /** Guest offset where each part starts. */
  private readonly starts: number[] = [];

  /** `parts` stay owned by the caller unless `closeParts`. */
  constructor(
    private readonly parts: readonly BlockDevice[],
    private readonly closeParts = false,
  ) {
    if (parts.length === 0) throw new RangeError("ConcatDevice needs at least one part");
    let at = 0;
    for (const p of parts) {
      this.starts.push(at);
      at += p.size;
    }
    if (!Number.isSafeInteger(at)) throw new RangeError("The parts add up to more than 2^53 bytes");
    this.size = at;
    this.format = parts[0].format;
    this.name = parts[0].name;
  }

  get capabilities(): DeviceCapabilities {
    return { ...READ_ONLY_CAPABILITIES, allocationUnit: Math.min(...this.parts.map((p) => p.capabilities.allocationUnit)) };
  }

  /** Index of the part holding `offset` (the last part for the end of the disk). */
  private partAt(offset: number): number {
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    // The last part starting at or before `offset`: never an empty one while offset < size.
    return lo;
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`range ${offset}+${length} is outside the ${this.size}-byte device`);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    this.checkRange(offset, into.length);
    let done = 0;
    while (done < into.length) {
      const i = this.partAt(offset + done);
      const inPart = offset + done - this.starts[i];
      const n = Math.min(into.length - done, this.parts[i].size - inPart);
      await this.parts[i].readInto(inPart, into.subarray(done, done + n));
      done += n;
    }
  }

  private refuse(): never {
    throw new ImageError("ERR_READ_ONLY", "Cannot write: several images read as one are read-only");
  }

  write(_offset: number, _data: Uint8Array): Promise<void> {
    this.refuse();
  }
  writeZeroes(_offset: number, _length: number, _options?: WriteZeroesOptions): Promise<void> {
    this.refuse();
  }
  discard(_offset: number, _length: number): Promise<void> {
    this.refuse();
  }
  writeCompressed(_offset: number, _data: Uint8Array): Promise<void> {
    this.refuse();
  }

  async flush(): Promise<void> {}

  async *extents(offset = 0, length = this.size - offset): AsyncIterable<Extent> {
    this.checkRange(offset, length);
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const i = this.partAt(pos);
      const part = this.parts[i];
      const inPart = pos - this.starts[i];
      const n = Math.min(end - pos, part.size - inPart);
      if (n > 0) for await (const e of part.extents(inPart, n)) yield { ...e, offset: e.offset + this.starts[i] };
      pos += n;
    }
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    this.checkRange(offset, length);
    const i = this.partAt(offset);
    const inPart = offset - this.starts[i];
    const e = await this.parts[i].blockStatus(inPart, Math.min(length, this.parts[i].size - inPart));
    return { ...e, offset };
  }

  async check(): Promise<CheckResult> {
    throw new UnsupportedFeatureError("Several images read as one cannot be checked: check each image");
  }

  async info(): Promise<FormatInfo> {
    return this.parts[0].info();
  }

  async close(): Promise<void> {
    if (this.closeParts) for (const p of this.parts) await p.close();
  }
}
