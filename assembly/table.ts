// Run length of big-endian u64 table entries that translate alike (qcow2/qed L2 tables, VHDX BAT,
// VDI/VMDK grain tables after widening). Entries are `stride` bytes apart; only their first 8
// bytes count. Offsets compare with wrap-around u64 arithmetic.

// @ts-ignore: decorator
@inline function entryAt(ptr: usize, k: u32, stride: u32): u64 {
  return bswap<u64>(load<u64>(ptr + <usize>k * stride));
}

/**
 * Number of entries from `first` (before `end`) whose `class` bits equal the first entry's and
 * whose offset bits continue `firstOffset + (k - first) * step`, or are all zero when the first
 * entry's offset is zero. Returns 0 when `first >= end`. `step` is a non-negative integer below 2^53.
 */
export function tableRunLength(
  ptr: usize, first: u32, end: u32, stride: u32,
  classMaskHi: u32, classMaskLo: u32, offsetMaskHi: u32, offsetMaskLo: u32, step: f64,
): u32 {
  if (first >= end) return 0;
  const classMask = (<u64>classMaskHi << 32) | <u64>classMaskLo;
  const offsetMask = (<u64>offsetMaskHi << 32) | <u64>offsetMaskLo;
  const v0 = entryAt(ptr, first, stride);
  const class0 = v0 & classMask;
  const offset0 = v0 & offsetMask;
  // Entries without an offset (unallocated, zero) continue only with offsets that are zero too.
  const delta: u64 = offset0 == 0 ? 0 : <u64>step;
  let k = first + 1;
  if (stride == 8 || stride == 16) {
    // Two entries per step: byte-swap both into native order with one shuffle, then compare.
    const cm = i64x2.splat(classMask);
    const om = i64x2.splat(offsetMask);
    const cls = i64x2.splat(class0);
    const delta2 = i64x2.splat(delta << 1);
    let expect = i64x2(offset0 + delta, offset0 + (delta << 1));
    if (stride == 8) {
      // Four entries per step where possible: two independent compare chains.
      const lanes2 = i64x2.splat(delta << 1);
      const delta4 = i64x2.splat(delta << 2);
      while (end - k >= 4) {
        const p = ptr + (<usize>k << 3);
        const ra = v128.load(p);
        const rb = v128.load(p, 16);
        const va = v128.shuffle<u8>(ra, ra, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
        const vb = v128.shuffle<u8>(rb, rb, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
        const okA = v128.and(i64x2.eq(v128.and(va, cm), cls), i64x2.eq(v128.and(va, om), expect));
        const okB = v128.and(i64x2.eq(v128.and(vb, cm), cls), i64x2.eq(v128.and(vb, om), i64x2.add(expect, lanes2)));
        if (!i64x2.all_true(v128.and(okA, okB))) break;
        expect = i64x2.add(expect, delta4);
        k += 4;
      }
      while (end - k >= 2) {
        const raw = v128.load(ptr + (<usize>k << 3));
        const v = v128.shuffle<u8>(raw, raw, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
        const ok = v128.and(i64x2.eq(v128.and(v, cm), cls), i64x2.eq(v128.and(v, om), expect));
        if (!i64x2.all_true(ok)) break;
        expect = i64x2.add(expect, delta2);
        k += 2;
      }
    } else {
      while (end - k >= 2) {
        const p = ptr + (<usize>k << 4);
        // Entry k+1 may be the table's last and end 8 bytes in, so load just its first 8 bytes.
        const a = v128.load(p);
        const b = v128.load64_zero(p + 16);
        const v = v128.shuffle<u8>(a, b, 7, 6, 5, 4, 3, 2, 1, 0, 23, 22, 21, 20, 19, 18, 17, 16);
        const ok = v128.and(i64x2.eq(v128.and(v, cm), cls), i64x2.eq(v128.and(v, om), expect));
        if (!i64x2.all_true(ok)) break;
        expect = i64x2.add(expect, delta2);
        k += 2;
      }
    }
  }
  let want = offset0 + <u64>(k - first) * delta;
  for (; k < end; k++) {
    const v = entryAt(ptr, k, stride);
    if ((v & classMask) != class0 || (v & offsetMask) != want) break;
    want += delta;
  }
  return k - first;
}
