/**
 * The contract of size measurement (`qemu-img measure`): what a driver is told about the image
 * to be created and what it answers. Format-neutral helpers for counting allocation units.
 * @module
 */
import type { CreateOptionValues } from "./format.js";

/** A guest byte range. */
export interface GuestRange {
  readonly offset: number;
  readonly length: number;
}

/** A persistent dirty bitmap of the source, as a target that can store bitmaps would copy it. */
export interface MeasureBitmap {
  readonly name: string;
  /** Bytes of guest data one bit stands for. */
  readonly granularity: number;
}

/** What {@link FormatDriver.measure} is told about the image to create. */
export interface MeasureInput {
  /**
   * Virtual size in bytes: the source's size, or the size asked for when there is no source.
   * Not rounded; the driver rounds as its create would.
   */
  readonly size: number;
  /** The create options, parsed against the driver's `measureOptions ?? createOptions`. */
  readonly options: CreateOptionValues;
  /**
   * The source's ranges that hold data (not known to read as zeros), sorted, disjoint and not
   * touching, computed once from the whole backing chain of the source. `undefined` when
   * measuring from a size alone: then only the metadata of an empty image is required.
   */
  readonly allocated?: readonly GuestRange[];
  /**
   * The backing file name the options give (`-o backing_file=…`), if any. With one, the new
   * image's backing file may share nothing with the source, so every cluster of a source is
   * counted (qemu's rule); formats that store the name count its bytes.
   */
  readonly backingFile?: string;
  /**
   * The source's persistent bitmaps; `undefined` when the source format cannot keep any (then
   * no `bitmaps` figure is given, as qemu-img).
   */
  readonly sourceBitmaps?: readonly MeasureBitmap[];
}

/**
 * Bytes a new image needs, as `qemu-img measure` reports them.
 * `required`: the file size a convert of the source (or an empty image of `size`) reaches;
 * `fullyAllocated`: the file size once every guest byte has been written;
 * `bitmaps`: extra bytes for copying the source's persistent bitmaps (`convert --bitmaps`).
 */
export interface MeasureResult {
  required: number;
  fullyAllocated: number;
  bitmaps?: number;
}

/** `n` rounded up to a multiple of `unit`. */
export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/**
 * How many `unit`-aligned units of `[0, size)` the ranges touch, each unit counted once. A unit
 * holding any data counts whole, the way a cluster is allocated whole.
 */
export function countTouchedUnits(ranges: readonly GuestRange[], unit: number): number {
  let count = 0;
  let nextFree = 0; // first unit index not yet counted
  for (const r of ranges) {
    if (r.length <= 0) continue;
    const first = Math.max(Math.floor(r.offset / unit), nextFree);
    const end = Math.ceil((r.offset + r.length) / unit);
    if (end > first) {
      count += end - first;
      nextFree = end;
    }
  }
  return count;
}

/**
 * The `unit`-sized units of `[0, input.size)` a convert of the source fills in a new image: the
 * units its data touches; all of them when a backing file is named (qemu's rule); none when
 * there is no source (a size alone).
 */
export function requiredUnits(input: MeasureInput, unit: number): number {
  if (input.allocated === undefined) return 0;
  const all = Math.ceil(input.size / unit);
  if (input.backingFile !== undefined) return all;
  return Math.min(all, countTouchedUnits(input.allocated, unit));
}
