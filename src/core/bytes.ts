/**
 * Byte comparisons shared by the engine and the operations.
 * @module
 */

/** Index of the first byte where `a` and `b` differ in `[0, n)`, or `n`. */
export function firstDifference(a: Uint8Array, b: Uint8Array, n: number): number {
  let i = 0;
  if ((a.byteOffset & 3) === 0 && (b.byteOffset & 3) === 0 && n >= 64) {
    const words = n >>> 2;
    const wa = new Int32Array(a.buffer, a.byteOffset, words);
    const wb = new Int32Array(b.buffer, b.byteOffset, words);
    let w = 0;
    for (; w < words; w++) if (wa[w] !== wb[w]) break;
    i = w * 4;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
