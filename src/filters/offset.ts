/**
 * A window onto another device (nbdkit's offset filter): guest offset 0 of the view is `start`
 * of `next`, and the view is `length` bytes long. Reads, writes, zeroing, discard and the
 * allocation map are forwarded with shifted offsets; operations that change the whole image
 * (resize, backing, amend, check with repair) are not offered. `qemu-img dd`'s `skip`/`count`
 * are such a window.
 * @module
 */
import type { BlockDevice, Extent, WriteZeroesOptions } from "../core/block-device.js";
import type { DeviceCapabilities } from "../core/capabilities.js";
import type { CheckResult, FormatInfo, RepairMode } from "../core/format.js";
import { UnsupportedFeatureError } from "../errors.js";

/** Options of {@link OffsetDevice}. */
export interface OffsetOptions {
  /** First byte of `next` the view shows. */
  start: number;
  /** Bytes the view shows; `start + length` must not pass `next.size`. */
  length: number;
  /** Close `next` when the view is closed. Default false: the caller owns `next`. */
  closeNext?: boolean;
}

export class OffsetDevice implements BlockDevice {
  readonly format: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly name?: string;
  private readonly start: number;

  constructor(
    private readonly next: BlockDevice,
    private readonly options: OffsetOptions,
  ) {
    const { start, length } = options;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > next.size) {
      throw new RangeError(`Window ${start}+${length} does not fit a ${next.size}-byte device`);
    }
    this.start = start;
    this.size = length;
    this.format = next.format;
    this.readOnly = next.readOnly;
    this.name = next.name;
  }

  get capabilities(): DeviceCapabilities {
    const c = this.next.capabilities;
    return { ...c, resize: false, backing: false, flatten: false, amend: [], makeEmpty: false, check: false };
  }

  private range(offset: number, length: number, what: string): number {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`${what}: range ${offset}+${length} is outside the ${this.size}-byte window`);
    }
    return this.start + offset;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.next.read(this.range(offset, length, "read"), length);
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    return this.next.readInto(this.range(offset, into.length, "read"), into);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    return this.next.write(this.range(offset, data.length, "write"), data);
  }

  async writeZeroes(offset: number, length: number, options?: WriteZeroesOptions): Promise<void> {
    return this.next.writeZeroes(this.range(offset, length, "write zeroes"), length, options);
  }

  async discard(offset: number, length: number): Promise<void> {
    return this.next.discard(this.range(offset, length, "discard"), length);
  }

  async writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    // Compressed units must stay aligned in `next`: a shifted window only writes plainly.
    const at = this.range(offset, data.length, "write compressed");
    const unit = this.next.capabilities.compressionUnit;
    return unit > 0 && at % unit === 0 ? this.next.writeCompressed(at, data) : this.next.write(at, data);
  }

  flush(): Promise<void> {
    return this.next.flush();
  }

  async *extents(offset = 0, length = this.size - offset): AsyncIterable<Extent> {
    const at = this.range(offset, length, "extents");
    for await (const e of this.next.extents(at, length)) {
      yield { ...e, offset: e.offset - this.start };
    }
  }

  async blockStatus(offset: number, length: number): Promise<Extent> {
    const e = await this.next.blockStatus(this.range(offset, length, "block status"), length);
    return { ...e, offset: e.offset - this.start };
  }

  async check(_repair?: RepairMode): Promise<CheckResult> {
    throw new UnsupportedFeatureError("A window onto an image cannot be checked: check the image itself", { format: this.format });
  }

  info(): Promise<FormatInfo> {
    return this.next.info();
  }

  async close(): Promise<void> {
    if (this.options.closeNext) await this.next.close();
  }
}
