/**
 * 16-byte identifiers (UUIDs/GUIDs) as images store them.
 * @module
 */

/** A new random (version 4) UUID in RFC 4122 byte order. */
export function randomUuid(): Uint8Array {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return b;
}

/**
 * Formats 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. With `mixedEndian` the first three
 * groups are read little-endian, as Microsoft GUIDs (and VirtualBox UUIDs) are stored.
 */
export function formatUuid(bytes: Uint8Array, mixedEndian = false): string {
  const order = mixedEndian ? [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15] : [...Array(16).keys()];
  const hex = order.map((i) => bytes[i].toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when all 16 bytes are zero (the "no UUID" value). */
export function isNullUuid(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}
