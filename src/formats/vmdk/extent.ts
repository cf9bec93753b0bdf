/**
 * The contract every VMDK extent kind (sparse, flat, zero) implements for the instance, which
 * places extents one after the other in the guest address space.
 * @module
 */
import type { Allocation, Mapping } from "../../core/mapping.js";
import type { IoBackend } from "../../io/backend.js";

/** What `info` shows of one extent (qemu-img's `extents[]`). */
export interface VmdkExtentInfo {
  readonly fileName?: string;
  /** The descriptor's type word (`SPARSE`, `FLAT`, …); empty for a monolithic sparse file. */
  readonly type: string;
  readonly size: number;
  /** Grain size of sparse extents. */
  readonly grainSize?: number;
  readonly compressed: boolean;
}

/**
 * One extent. Offsets are relative to the extent's first guest byte; callers keep ranges inside
 * `[0, size)`. Mappings may cover less than asked.
 */
export interface VmdkExtent {
  /** Extent size in bytes. */
  readonly size: number;
  /** Grain size of sparse extents (undefined for flat and zero extents). */
  readonly grainSize?: number;
  /** True when writes into the extent are possible at all. */
  readonly writable: boolean;
  /** The extent's file (undefined for ZERO extents), as opened. */
  readonly file?: IoBackend;
  info(): VmdkExtentInfo;
  getMapping(rel: number, length: number): Promise<Mapping>;
  /** Makes whole grains writable (sparse extents). */
  allocate?(rel: number, length: number): Promise<Allocation>;
  /** Marks whole grains zeroed; returns the bytes handled (0 = cannot). */
  zeroRange?(rel: number, length: number): Promise<number>;
  /** Stores one grain compressed; false when this extent does not compress. */
  writeCompressed?(rel: number, data: Uint8Array): Promise<boolean>;
  /** Decodes a `special` mapping's grain: `inGrain` bytes into the grain, `into.length` bytes. */
  readSpecial?(token: unknown, inGrain: number, into: Uint8Array): Promise<void>;
  /** QEMU's check of this extent: the first problem found, or undefined. `firstSector` is the extent's guest sector. */
  check(firstSector: number): Promise<string | undefined>;
  /**
   * `check -r all` (sparse extents): clears what points past the end of the file (grain
   * tables, GTEs), which a crash with a volatile disk cache can leave. Returns one line per fix.
   */
  repair?(beforeFirstFix?: () => Promise<void>): Promise<string[]>;
  /** Writes out buffered state (pending stream grains) and flushes the file. */
  flush(): Promise<void>;
}
