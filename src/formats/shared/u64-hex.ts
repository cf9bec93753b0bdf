/**
 * Hex text of raw u64 fields, for messages about values too large to show as numbers.
 * @module
 */

/** The u64 at `offset` of `buf` as `0x…` hex (no leading zeros). */
export function u64Hex(buf: Uint8Array, offset: number, littleEndian: boolean): string {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return `0x${v.getBigUint64(offset, littleEndian).toString(16)}`;
}
