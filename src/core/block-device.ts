/**
 * The public face of an open image: what `openImage` returns.
 * @module
 */
import type { DeviceCapabilities } from "./capabilities.js";
import type { BackingReference, CheckResult, FormatInfo, RepairMode } from "./format.js";

/** One allocation record, with `qemu-img map --output=json` meanings. */
export interface Extent {
  /** Guest offset. */
  offset: number;
  length: number;
  /** Index in the backing chain of the image that answers for the range (0 = top). */
  depth: number;
  /** Some image of the chain stores (or explicitly zeroes) the range. */
  present: boolean;
  /** The range reads as zeros. */
  zero: boolean;
  /** The range holds data (not known to be zero). */
  data: boolean;
  /** Stored compressed (or otherwise transformed): no host offset applies. */
  compressed?: boolean;
  /** Host offset of the first byte, where the data is stored verbatim. */
  fileOffset?: number;
  /** Label of the file holding the data. */
  file?: string;
}

/** Options of {@link BlockDevice.writeZeroes}. */
export interface WriteZeroesOptions {
  /** Allow the image to release the space (qemu-io `write -z -u`). */
  unmap?: boolean;
}

/** Options of {@link BlockDevice.amend}: an abort signal, for symmetry with the operations. */
export interface AmendCallOptions {
  signal?: AbortSignal;
}

/**
 * A virtual disk: bytes at guest offsets. Offsets and lengths are byte counts; every range must
 * lie inside `[0, size)` (a `RangeError` otherwise).
 */
export interface BlockDevice {
  /** Format name of the top image (`qcow2`, `raw`, …). */
  readonly format: string;
  /** Virtual size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** The label of the top image's file (its path or URL), for messages, when it has one. */
  readonly name?: string;
  /** What this open device can do. Ask it instead of testing `format`. */
  readonly capabilities: DeviceCapabilities;
  /** The backing file the top image names (as stored), if any. */
  readonly backingFile?: BackingReference;
  /** The opened backing device, when the chain was opened with it. */
  readonly backing?: BlockDevice;
  /** Reads `length` bytes at `offset` into a new buffer. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Reads `into.length` bytes at `offset` into `into` (which may be a view of Wasm memory). */
  readInto(offset: number, into: Uint8Array): Promise<void>;
  /** Writes `data` at `offset`. Does not keep `data` after the promise settles. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes `[offset, offset+length)` read as zeros, cheaply where the format can. */
  writeZeroes(offset: number, length: number, options?: WriteZeroesOptions): Promise<void>;
  /**
   * Releases the space of the whole allocation units inside the range (partial units at its
   * edges stay as they are). Discard may not change what the guest reads unless the format can
   * represent that state: a released unit reads as zeros where the format can record that, and
   * otherwise stays allocated with its data (qcow2 version 2 over a backing file has no zero
   * clusters). It never makes a range read the backing file's data instead of what the guest
   * wrote, as with qemu.
   */
  discard(offset: number, length: number): Promise<void>;
  /** Writes whole allocation units compressed where the format supports it (convert -c). */
  writeCompressed(offset: number, data: Uint8Array): Promise<void>;
  /** Makes every completed write durable. */
  flush(): Promise<void>;
  /** The allocation map, merged like `qemu-img map`. */
  extents(offset?: number, length?: number): AsyncIterable<Extent>;
  /** The status of the range starting at `offset` (one unmerged record). */
  blockStatus(offset: number, length: number): Promise<Extent>;
  /** Consistency check of the top image, with optional repair. */
  check(repair?: RepairMode): Promise<CheckResult>;
  /** Format details of the top image. */
  info(): Promise<FormatInfo>;
  /** Flushes and closes the image and its backing chain. */
  close(): Promise<void>;
  /**
   * Changes the virtual size (present where `capabilities.resize`). The format may round the
   * size up to its unit; `size` reports the result. Durable once `flush` completes.
   */
  resize?(newSize: number): Promise<void>;
  /**
   * Records `ref` as the backing file (`undefined`: none) without touching guest data (present
   * where `capabilities.backing` or `capabilities.flatten`; with only `flatten`, `undefined` is
   * accepted once the image no longer reads its backing file).
   */
  setBacking?(ref: BackingReference | undefined): Promise<void>;
  /** Applies `qemu-img amend` options (present where `capabilities.amend` is not empty). */
  amend?(options: ReadonlyArray<readonly [string, string]>, callOptions?: AmendCallOptions): Promise<void>;
  /**
   * Empties the image so that every range reads its backing file again (present where
   * `capabilities.makeEmpty`); `qemu-img commit` does this after copying.
   */
  makeEmpty?(): Promise<void>;
}
