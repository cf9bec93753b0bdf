/**
 * What a format driver answers when asked where a guest range lives.
 * @module
 */
import type { IoBackend } from "../io/backend.js";

/** Guest bytes stored verbatim in `file` starting at `fileOffset`. */
export interface DataMapping {
  readonly kind: "data";
  /** Guest bytes covered, starting at the queried offset. */
  readonly length: number;
  readonly file: IoBackend;
  readonly fileOffset: number;
  /**
   * The host space is shared (a snapshot, a cluster with refcount > 1): it may be read but a
   * write must go through `allocate` (copy-on-write) instead of overwriting it in place.
   */
  readonly shared?: boolean;
}

/** Guest bytes that read as zeros (a zero cluster, an unallocated block of a zero-init format). */
export interface ZeroMapping {
  readonly kind: "zero";
  readonly length: number;
  /**
   * True when the zeros are recorded in the image itself (a zero flag); false when the range is
   * simply not allocated and the format defines unallocated space as zero.
   */
  readonly allocated?: boolean;
}

/** Guest bytes not stored here: read through to the backing image (zeros if there is none). */
export interface BackingMapping {
  readonly kind: "backing";
  readonly length: number;
}

/**
 * Guest bytes stored in a transformed form (compressed, encrypted). The engine calls the
 * instance's `readSpecial` to decode them. `token` is the driver's own description.
 */
export interface SpecialMapping {
  readonly kind: "special";
  readonly length: number;
  /** Host offset for reporting in `map` (may be omitted). */
  readonly fileOffset?: number;
  /** A label for `map`/`info`: `compressed`, `encrypted`. */
  readonly what: string;
  readonly token: unknown;
}

/** The queried offset is at or past the end of the virtual disk. `length` is 0. */
export interface EofMapping {
  readonly kind: "eof";
  readonly length: 0;
}

/** One answer of `FormatInstance.getMapping`. `length` is always > 0 except for `eof`. */
export type Mapping = DataMapping | ZeroMapping | BackingMapping | SpecialMapping | EofMapping;

/** A range made writable by `FormatInstance.allocate`. */
export interface Allocation {
  /** Where the allocated guest range lives; the engine writes the guest data there. */
  readonly mapping: DataMapping;
  /**
   * Links the new space into the image's metadata. The engine calls it after the data is
   * written, so a crash in between leaves at worst a leaked cluster, never one that reads garbage.
   */
  commit(): Promise<void>;
}
