// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with table lookups.
//
// Long inputs are cut into blocks of three 256-byte lanes whose CRCs are computed in one loop
// (slicing-by-8 each), so three independent dependency chains keep the load ports busy; the lane
// CRCs are then joined with the "append 256 zero bytes" operator, which is linear in the CRC
// register and so is itself four table lookups. The rest uses slicing-by-16.
// The register is kept un-inverted inside; the ~ of the CRC definition is applied at the ends.

const POLY: u32 = 0x82f63b78;
const SLICES = 16;
/** Table t maps a byte to its CRC contribution t bytes further along the message. */
const TABLES: usize = memory.data(16 * 256 * 4, 64);
const LANE: usize = 256;
/** SHIFT[k][b]: the register (b << 8k) after LANE zero bytes. */
const SHIFT: usize = memory.data(4 * 256 * 4, 64);

// @ts-ignore: decorator
@inline function tab(t: usize, b: u32): u32 {
  return load<u32>(TABLES + (t << 10) + (<usize>(b & 0xff) << 2));
}

// @ts-ignore: decorator
@inline function shiftLane(c: u32): u32 {
  return load<u32>(SHIFT + (<usize>(c & 0xff) << 2))
    ^ load<u32>(SHIFT + 1024 + (<usize>((c >>> 8) & 0xff) << 2))
    ^ load<u32>(SHIFT + 2048 + (<usize>((c >>> 16) & 0xff) << 2))
    ^ load<u32>(SHIFT + 3072 + (<usize>(c >>> 24) << 2));
}

/** Fills the tables; called once from the start function. */
export function initCrc32cTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>n << 2), c);
  }
  for (let n: u32 = 0; n < 256; n++) {
    let c = load<u32>(TABLES + (<usize>n << 2));
    for (let t = 1; t < SLICES; t++) {
      c = tab(0, c) ^ (c >>> 8);
      store<u32>(TABLES + (<usize>t << 10) + (<usize>n << 2), c);
    }
  }
  // The operator is linear: find the image of each of the 32 register bits, then XOR them.
  const basis = memory.data(32 * 4, 16);
  for (let bit = 0; bit < 32; bit++) {
    let c: u32 = 1 << bit;
    for (let i: usize = 0; i < LANE; i++) c = tab(0, c) ^ (c >>> 8);
    store<u32>(basis + (<usize>bit << 2), c);
  }
  for (let k = 0; k < 4; k++) {
    for (let b = 0; b < 256; b++) {
      let c: u32 = 0;
      for (let i = 0; i < 8; i++) if ((b >>> i) & 1) c ^= load<u32>(basis + (<usize>(8 * k + i) << 2));
      store<u32>(SHIFT + (<usize>k << 10) + (<usize>b << 2), c);
    }
  }
}

// @ts-ignore: decorator
@inline function slice8(c: u32, p: usize): u32 {
  const a = load<u32>(p) ^ c;
  const b = load<u32>(p, 4);
  return tab(7, a) ^ tab(6, a >>> 8) ^ tab(5, a >>> 16) ^ tab(4, a >>> 24)
    ^ tab(3, b) ^ tab(2, b >>> 8) ^ tab(1, b >>> 16) ^ tab(0, b >>> 24);
}

/** CRC-32C of `len` bytes at `ptr`, continuing from `crc` (0 to start). */
export function crc32c(ptr: usize, len: usize, crc: u32): u32 {
  let c = ~crc;
  let p = ptr;
  const end = ptr + len;
  while (end - p >= 3 * LANE) {
    let c1: u32 = 0;
    let c2: u32 = 0;
    for (let i: usize = 0; i < LANE; i += 8) {
      c = slice8(c, p + i);
      c1 = slice8(c1, p + LANE + i);
      c2 = slice8(c2, p + 2 * LANE + i);
    }
    c = shiftLane(shiftLane(c) ^ c1) ^ c2;
    p += 3 * LANE;
  }
  while (end - p >= 16) {
    const a = load<u32>(p) ^ c;
    const b = load<u32>(p, 4);
    const d = load<u32>(p, 8);
    const e = load<u32>(p, 12);
    c = tab(15, a) ^ tab(14, a >>> 8) ^ tab(13, a >>> 16) ^ tab(12, a >>> 24)
      ^ tab(11, b) ^ tab(10, b >>> 8) ^ tab(9, b >>> 16) ^ tab(8, b >>> 24)
      ^ tab(7, d) ^ tab(6, d >>> 8) ^ tab(5, d >>> 16) ^ tab(4, d >>> 24)
      ^ tab(3, e) ^ tab(2, e >>> 8) ^ tab(1, e >>> 16) ^ tab(0, e >>> 24);
    p += 16;
  }
  for (; p < end; p++) c = tab(0, c ^ load<u8>(p)) ^ (c >>> 8);
  return ~c;
}
