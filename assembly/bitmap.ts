// Bitmap run scans. Bit `i` lives in byte `i >> 3`; within a byte bit 0 is the least significant
// (LSB-first) or the most significant (MSB-first). Words are read as little-endian u64, so in
// LSB-first order bit i of the word is bitmap bit i (ctz finds it); in MSB-first order the
// byte-swapped word has bitmap bit i at position 63 - i (clz finds it).

/** Reads the 64 bits of word `w`, treating bytes at or past `nbytes` as zero. */
// @ts-ignore: decorator
@inline function loadWord(ptr: usize, w: u32, nbytes: u32, msbFirst: bool): u64 {
  const off = w << 3;
  let x: u64 = 0;
  if (nbytes - off >= 8) {
    x = load<u64>(ptr + off);
  } else {
    // The bitmap's last word may end before 8 bytes; never read past it (it may end the memory).
    for (let k = off; k < nbytes; k++) x |= (<u64>load<u8>(ptr + k)) << ((<u64>(k - off)) << 3);
  }
  return msbFirst ? bswap<u64>(x) : x;
}

function nextBit(ptr: usize, from: u32, to: u32, msbFirst: bool, clear: bool): u32 {
  if (from >= to) return to;
  const nbytes: u32 = (to >>> 3) + u32((to & 7) != 0);
  const flip: u64 = clear ? <u64>-1 : 0;
  const lastW: u32 = (to - 1) >>> 6;
  let w: u32 = from >>> 6;
  let x = loadWord(ptr, w, nbytes, msbFirst) ^ flip;
  const s = <u64>(from & 63);
  x = msbFirst ? x & (<u64>-1 >>> s) : x & (<u64>-1 << s);
  while (true) {
    if (x != 0) {
      const i = (w << 6) + <u32>(msbFirst ? clz<u64>(x) : ctz<u64>(x));
      return i < to ? i : to;
    }
    if (w == lastW) return to;
    w++;
    // Skip 512 bits per step while whole words remain before the last one.
    while (lastW - w > 8) {
      const p = ptr + (<usize>w << 3);
      const a = v128.load(p);
      const b = v128.load(p, 16);
      const c = v128.load(p, 32);
      const d = v128.load(p, 48);
      const hit = clear
        ? v128.not(v128.and(v128.and(a, b), v128.and(c, d)))
        : v128.or(v128.or(a, b), v128.or(c, d));
      if (v128.any_true(hit)) break;
      w += 8;
    }
    x = loadWord(ptr, w, nbytes, msbFirst) ^ flip;
  }
  return to;
}

/** Index of the first set bit in `[from, to)` of the bitmap at `ptr`, or `to`. */
export function nextSetBit(ptr: usize, from: u32, to: u32, msbFirst: bool): u32 {
  return nextBit(ptr, from, to, msbFirst, false);
}

/** Index of the first clear bit in `[from, to)` of the bitmap at `ptr`, or `to`. */
export function nextClearBit(ptr: usize, from: u32, to: u32, msbFirst: bool): u32 {
  return nextBit(ptr, from, to, msbFirst, true);
}

/** Sets (`value`) or clears bits `[from, to)` of the bitmap at `ptr`. */
export function fillBits(ptr: usize, from: u32, to: u32, value: bool): void {
  let i = from;
  for (; i < to && (i & 7) != 0; i++) setBit(ptr, i, value);
  const wholeEnd = to & ~7;
  if (i < wholeEnd) {
    memory.fill(ptr + (i >>> 3), value ? 0xff : 0, (wholeEnd - i) >>> 3);
    i = wholeEnd;
  }
  for (; i < to; i++) setBit(ptr, i, value);
}

// @ts-ignore: decorator
@inline function setBit(ptr: usize, i: u32, value: bool): void {
  const p = ptr + (i >>> 3);
  const m = <u8>(1 << <u8>(i & 7));
  store<u8>(p, value ? load<u8>(p) | m : load<u8>(p) & ~m);
}
