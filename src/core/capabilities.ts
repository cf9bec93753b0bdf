/**
 * What an open device can do, asked instead of reaching into the format (nbdkit's `can_*`).
 * @module
 */
import type { CreateOptionSpec } from "./format.js";

/**
 * The capability record of a {@link BlockDevice}. It describes this open device: a format that
 * can resize reports `resize: false` when it is open read-only. Callers ask it; they never test
 * the format name or reach into the driver.
 */
export interface DeviceCapabilities {
  /** Writes are accepted (open read-write, and the format can write). */
  readonly write: boolean;
  /** `resize` changes the virtual size. */
  readonly resize: boolean;
  /**
   * `qemu-img resize` takes sizes in multiples of this many bytes (512 for image formats, 1 for
   * raw). The driver may still round a size up to its own unit.
   */
  readonly resizeAlignment: number;
  /** `setBacking` records a new backing file (or none) without touching guest data. */
  readonly backing: boolean;
  /**
   * The image can drop its backing file once every range it reads through has been copied into
   * it (a safe `rebase -b ""`), even where `backing` is false (FVD's flatten).
   */
  readonly flatten: boolean;
  /** `writeCompressed` stores data compressed (elsewhere it is a plain write). */
  readonly compress: boolean;
  /** Bytes one compressed write covers: whole units of this size (0 when `compress` is false). */
  readonly compressionUnit: number;
  /** `writeZeroes` of whole allocation units is a metadata change (zero clusters), not data. */
  readonly zero: boolean;
  /** `discard` releases space. */
  readonly discard: boolean;
  /**
   * Writes into unallocated space may run concurrently (their data writes overlap): feeding
   * several requests at once pays off.
   */
  readonly overlappingWrites: boolean;
  /**
   * Writes into unallocated space allocate host space in the order they arrive, so a copy in
   * guest order gives a sequential layout (false for raw, where every offset is preallocated).
   */
  readonly allocatesOnWrite: boolean;
  /** The unit of allocation in bytes (cluster, grain, block; 512 for raw). */
  readonly allocationUnit: number;
  /** The format keeps internal snapshots that can be listed. */
  readonly snapshots: boolean;
  /** `check` is implemented for the top image. */
  readonly check: boolean;
  /** Options `amend` accepts, qemu-img's names (empty: `amend` is not supported). */
  readonly amend: readonly CreateOptionSpec[];
  /** `makeEmpty` releases every range so the image reads its backing file again (commit). */
  readonly makeEmpty: boolean;
  /** Reads must be sequential (a pipe): no random access. */
  readonly sequentialOnly: boolean;
}

/** The capabilities of a device that can do nothing but read, for wrappers and tests. */
export const READ_ONLY_CAPABILITIES: DeviceCapabilities = Object.freeze({
  write: false,
  resize: false,
  resizeAlignment: 512,
  backing: false,
  flatten: false,
  compress: false,
  compressionUnit: 0,
  zero: false,
  discard: false,
  overlappingWrites: false,
  allocatesOnWrite: false,
  allocationUnit: 512,
  snapshots: false,
  check: false,
  amend: Object.freeze([]) as readonly CreateOptionSpec[],
  makeEmpty: false,
  sequentialOnly: false,
});
