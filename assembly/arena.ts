// The buffer arena: all linear memory above the static data, handed out in 4 KiB granules,
// first fit. The memory never grows, so views of it that JavaScript holds are never detached.
// Book-keeping lives just above the static data: one bit per granule (set = in use) and the
// length in granules of each allocation, stored at its first granule.

import { fillBits, nextClearBit, nextSetBit } from "./bitmap";

const GRANULE_SHIFT: u32 = 12;
const GRANULE: usize = 1 << GRANULE_SHIFT;

let used: usize = 0;      // bitmap, one bit per granule
let lengths: usize = 0;   // u32 per granule
let base: usize = 0;      // first granule
let granules: u32 = 0;
let lowestFree: u32 = 0;  // every granule below it is in use
let inUse: u32 = 0;

/** Lays out the arena over the memory present at start; called once from the start function. */
export function initArena(): void {
  const memEnd = <usize>memory.size() << 16;
  const heap = (__heap_base + 63) & ~(<usize>63);
  if (memEnd <= heap + 2 * GRANULE) return;
  const maxGranules = <u32>((memEnd - heap) >>> GRANULE_SHIFT);
  used = heap;
  lengths = (used + ((<usize>maxGranules + 63) >>> 3) + 63) & ~(<usize>63);
  base = (lengths + (<usize>maxGranules << 2) + GRANULE - 1) & ~(GRANULE - 1);
  granules = base < memEnd ? <u32>((memEnd - base) >>> GRANULE_SHIFT) : 0;
}

/** Address of `size` bytes (`size` >= 1) aligned to 4 KiB, or 0 when no run of granules fits. */
export function alloc(size: usize): usize {
  if (size == 0 || size > (<usize>granules << GRANULE_SHIFT)) return 0;
  const n = <u32>((size + GRANULE - 1) >>> GRANULE_SHIFT);
  let i = nextClearBit(used, lowestFree, granules, false);
  lowestFree = i;
  while (granules - i >= n) {
    const j = nextSetBit(used, i, i + n, false);
    if (j == i + n) {
      fillBits(used, i, i + n, true);
      store<u32>(lengths + (<usize>i << 2), n);
      if (i == lowestFree) lowestFree = i + n;
      inUse += n;
      return base + (<usize>i << GRANULE_SHIFT);
    }
    i = nextClearBit(used, j, granules, false);
  }
  return 0;
}

/** Frees the allocation starting at `ptr`; returns its size in granules, or 0 when `ptr` is not one. */
export function free(ptr: usize): u32 {
  if (ptr < base || ((ptr - base) & (GRANULE - 1)) != 0) return 0;
  const i = <u32>((ptr - base) >>> GRANULE_SHIFT);
  if (i >= granules) return 0;
  const n = load<u32>(lengths + (<usize>i << 2));
  if (n == 0 || nextClearBit(used, i, i + n, false) != i + n) return 0;
  fillBits(used, i, i + n, false);
  store<u32>(lengths + (<usize>i << 2), 0);
  if (i < lowestFree) lowestFree = i;
  inUse -= n;
  return n;
}

/** Address of the first granule. */
export function arenaBase(): usize {
  return base;
}

/** Bytes the arena spans. */
export function arenaBytes(): usize {
  return <usize>granules << GRANULE_SHIFT;
}

/** Bytes currently allocated (whole granules). */
export function arenaBytesInUse(): usize {
  return <usize>inUse << GRANULE_SHIFT;
}
