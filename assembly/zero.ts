// Zero detection over linear memory, 16 bytes per SIMD lane group, 64 bytes per loop step.
// Addresses are absolute pointers into linear memory; results are absolute pointers too.

/** Offset (0..15) of the first non-zero byte of `v`, which must hold at least one. */
// @ts-ignore: decorator
@inline function firstNonZeroLane(v: v128): usize {
  const zeroLanes = i8x16.bitmask(i8x16.eq(v, i8x16.splat(0)));
  return <usize>ctz<i32>(~zeroLanes);
}

/** Address of the first non-zero byte in `[start, end)`, or `end` when all are zero (or `start >= end`). */
export function findNonZero(start: usize, end: usize): usize {
  let p = start;
  if (p >= end) return end;
  if (end - p < 16) {
    for (; p < end; p++) if (load<u8>(p) != 0) return p;
    return end;
  }
  // One unaligned load covers the head; then continue from the next 16-byte boundary.
  let v = v128.load(p);
  if (v128.any_true(v)) return p + firstNonZeroLane(v);
  p = (p + 16) & ~(<usize>15);
  while (end - p >= 64) {
    const a = v128.load(p);
    const b = v128.load(p, 16);
    const c = v128.load(p, 32);
    const d = v128.load(p, 48);
    if (v128.any_true(v128.or(v128.or(a, b), v128.or(c, d)))) break;
    p += 64;
  }
  while (end - p >= 16) {
    v = v128.load(p);
    if (v128.any_true(v)) return p + firstNonZeroLane(v);
    p += 16;
  }
  if (p < end) {
    // The tail re-reads up to 15 bytes already known to be zero rather than looping bytewise.
    const q = end - 16;
    v = v128.load(q);
    if (v128.any_true(v)) return q + firstNonZeroLane(v);
  }
  return end;
}

/**
 * End of the run of like granules starting at `start` in `[start, end)`: granules are `granule`
 * bytes counted from `start` (the last may be shorter); the run is of all-zero granules when the
 * first one is all zeros, else of granules that each hold a non-zero byte. `granule` must be >= 1.
 */
export function granuleRunEnd(start: usize, end: usize, granule: usize): usize {
  if (start >= end) return start;
  const firstEnd = end - start <= granule ? end : start + granule;
  if (findNonZero(start, firstEnd) == firstEnd) {
    // A zero run ends at the granule holding the first non-zero byte: one scan, no per-granule calls.
    const nz = findNonZero(firstEnd, end);
    if (nz == end) return end;
    return start + ((nz - start) / granule) * granule;
  }
  let pos = firstEnd;
  while (pos < end) {
    const g = end - pos <= granule ? end : pos + granule;
    if (findNonZero(pos, g) == g) break;
    pos = g;
  }
  return pos;
}
