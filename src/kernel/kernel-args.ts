/**
 * Argument checks shared by both kernels, so that the Wasm kernel never scans memory outside the
 * caller's view and both kernels reject the same inputs with the same errors.
 * @module
 */

/** Throws `RangeError` unless `0 <= from` and `to <= length` (called only when `from < to`). */
export function checkRange(what: string, length: number, from: number, to: number): void {
  if (from >= 0 && to <= length) return;
  throw new RangeError(`Range [${from}, ${to}) is outside the ${what} of ${length}`);
}

/** Throws `RangeError` unless `granule` is a positive integer. */
export function checkGranule(granule: number): void {
  if (Number.isInteger(granule) && granule >= 1) return;
  throw new RangeError(`Granule of ${granule} bytes is not a positive integer`);
}

/**
 * Throws `RangeError` unless entries `[first, end)` of `stride` bytes fit in `length` bytes and
 * `step` is an integer in `[0, 2^53]` (called only when `first < end`).
 */
export function checkTable(length: number, first: number, end: number, stride: number, step: number): void {
  if (!(Number.isInteger(stride) && stride >= 8)) {
    throw new RangeError(`Table stride of ${stride} bytes is below 8 or not an integer`);
  }
  if (!(Number.isInteger(step) && step >= 0 && step <= 2 ** 53)) {
    throw new RangeError(`Table step of ${step} is not an integer in [0, 2^53]`);
  }
  if (!(first >= 0 && (end - 1) * stride + 8 <= length)) {
    throw new RangeError(`Table entries [${first}, ${end}) of ${stride} bytes exceed the table of ${length} bytes`);
  }
}

/** Throws `RangeError` unless `size` is a non-negative integer. */
export function checkSize(size: number): void {
  if (Number.isInteger(size) && size >= 0) return;
  throw new RangeError(`Buffer size of ${size} bytes is not a non-negative integer`);
}
